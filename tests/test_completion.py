"""Exercise 1 with missing entries: the masked loss against the plain masked loop, the triples layout against the
dense one, the references on the hidden entries against direct implementations, and filling in by predict."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import QUIET, fit, iris_centred, lab2, plain_factors

from lab2_lightning.data import EntriesDataModule, SyntheticDataModule, TableDataModule
from lab2_lightning.models.factorisation import summed_squared_error
from lab2_lightning.models.linalg import hard_impute
from lab2_lightning.models.reference import gd_factorise_masked

HIDE = ("--config", "factorise", "--data.holdout", "0.2")


def factors(run_dir: Path) -> list[tuple[torch.Tensor, torch.Tensor]]:
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    members = sum(key.startswith("U.") for key in state)
    return [(state[f"U.{k}"], state[f"V.{k}"]) for k in range(members)]


def numpy_hard_impute(
    A: np.ndarray, M: np.ndarray, rank: int, iterations: int = 500, tol: float = 1e-4
) -> tuple[np.ndarray, int]:
    """Iterative SVD imputation written directly: the dense filled matrix, NumPy's full SVD each round; the
    completed matrix and the rounds taken."""
    Z, previous = np.zeros_like(A), np.inf
    for rounds in range(iterations + 1):
        error = ((A - Z)[M] ** 2).sum()
        if rounds == iterations or abs(previous - error) <= tol * error:
            break
        previous = error
        U, S, Vt = np.linalg.svd(np.where(M, A, Z), full_matrices=False)
        Z = (U[:, :rank] * S[:rank]) @ Vt[:rank]
    return Z, rounds


def test_the_masked_fit_is_the_plain_masked_loop_bit_for_bit() -> None:
    """Iris with 20% of its entries hidden, two seeds, float64 on the CPU: the module's U and V are the plain masked
    loop's, on the DataModule's matrix (centred by each column's observed mean), bit for bit."""
    data = TableDataModule(holdout=0.2)
    A, M = data.train_x, ~data.train_x.isnan()
    assert int((~M).sum()) == 120 == len(data.hidden)
    fit(*HIDE, "--model.seeds", "[0,1]")
    for seed, (U, V) in zip((0, 1), factors(Path("lightning_logs/version_0")), strict=True):
        torch.manual_seed(seed)
        U_plain, V_plain = gd_factorise_masked(A, M, 2)
        assert torch.equal(U, U_plain) and torch.equal(V, V_plain)


def test_with_nothing_missing_the_masked_loss_is_the_labs() -> None:
    """An all-observed mask gives the lab's loss and gradient bit for bit; a fit that allows missing entries on a
    complete file is today's fit."""
    A = iris_centred()
    U, V = (torch.rand(n, 2, dtype=torch.float64, requires_grad=True) for n in A.shape)
    everything = torch.ones_like(A, dtype=torch.bool)
    dense = {"x": A, "rows": slice(0, 150)}
    masked = dense | {"observed": everything, "observed_x": A[everything]}
    losses = [summed_squared_error(U, V, batch) for batch in (dense, masked)]
    grads = [torch.autograd.grad(loss, (U, V)) for loss in losses]
    assert torch.equal(losses[0], losses[1])
    assert all(torch.equal(a, b) for a, b in zip(*grads, strict=True))
    results = fit("--config", "factorise", "--data.allow_missing", "true", "--trainer.max_steps", "200")
    U, V = factors(Path("lightning_logs/version_0"))[0]
    assert all(torch.equal(a, b) for a, b in zip((U, V), plain_factors(0, steps=200), strict=True))
    assert "hidden_rmse" not in results["runs"][0] and "svd_loss" in results["runs"][0]


def test_the_triples_layout_equals_the_dense_masked_one(tmp_path: Path) -> None:
    """The same observed entries as a dense matrix with NaN (.npy) and as triples (.npz): the same losses, factors
    and hidden-entry RMSE, to rounding (the sums run in another order)."""
    g = np.random.default_rng(1)
    A = g.standard_normal((40, 3)) @ g.standard_normal((3, 12))
    A[g.random(A.shape) < 0.3] = np.nan
    np.save(tmp_path / "A.npy", A)
    row, col = np.nonzero(~np.isnan(A))
    np.savez(tmp_path / "A.npz", row=row, col=col, value=A[row, col])
    dense = TableDataModule(path=str(tmp_path / "A.npy"), label_column=None, allow_missing=True, holdout=0.25)
    triples = EntriesDataModule(path=str(tmp_path / "A.npz"), holdout=0.25)
    assert (dense.n_rows, dense.n_features) == (triples.n_rows, triples.n_features)
    assert dense.n_observed == triples.n_observed
    seen = dense.training_entries()
    assert torch.equal(seen.row, triples.entries.row) and torch.equal(seen.col, triples.entries.col)
    assert torch.allclose(seen.value, triples.entries.value, rtol=1e-14, atol=1e-14)
    runs = []
    for data, path in (("TableDataModule", "A.npy"), ("EntriesDataModule", "A.npz")):
        extra = ["--data.label_column", "null", "--data.allow_missing", "true"] if path == "A.npy" else []
        args = ["--data", f"lab2_lightning.data.{data}", "--data.path", str(tmp_path / path), "--data.holdout", "0.25"]
        runs.append(fit("--config", "factorise", *args, *extra, "--model.lr", "auto", "--model.rank", "3"))
    for key in ("gd_loss", "hidden_rmse", "column_mean_rmse", "hard_impute_rmse"):
        assert runs[0]["runs"][0][key] == pytest.approx(runs[1]["runs"][0][key], rel=1e-9)
    dense_factors, triples_factors = (factors(Path(f"lightning_logs/version_{k}"))[0] for k in (0, 1))
    for a, b in zip(dense_factors, triples_factors, strict=True):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)


def test_hard_impute_is_the_direct_numpy_one() -> None:
    """On a small matrix (the subspace then spans every column, so each round's SVD is exact) the operator form
    equals the dense NumPy loop."""
    g = np.random.default_rng(0)
    A = g.standard_normal((30, 3)) @ g.standard_normal((3, 12)) + 0.01 * g.standard_normal((30, 12))
    M = g.random(A.shape) > 0.3
    row, col = np.nonzero(M)
    for iterations, tol in ((500, 1e-4), (50, 1e-12)):  # settled; stopped by the cap
        P, Q, rounds = hard_impute(
            torch.from_numpy(row), torch.from_numpy(col), torch.from_numpy(A[M]), A.shape, 3, iterations, tol
        )
        Z, expected_rounds = numpy_hard_impute(A, M, 3, iterations, tol)
        assert rounds == expected_rounds and (rounds < iterations) == (tol == 1e-4)
        assert np.allclose((P @ Q.T).numpy(), Z, rtol=0, atol=1e-10)


def test_the_references_on_the_hidden_entries() -> None:
    """The column means' RMSE by hand, and iterative SVD imputation's from the NumPy loop, on the same hidden
    entries as gradient descent; GD's RMSE is that of its final U Vᵀ."""
    results = fit(*HIDE, "--model.lr", "0.005")["runs"][0]
    data = TableDataModule(holdout=0.2)
    A, hidden = data.train_x.numpy(), data.hidden
    M = ~np.isnan(A)
    truth = hidden.value.numpy()
    means = np.nanmean(A, axis=0)[hidden.col]  # 0 to rounding: the columns are centred by their observed means
    assert results["column_mean_rmse"] == pytest.approx(np.sqrt(np.mean((means - truth) ** 2)), rel=1e-12)
    Z, rounds = numpy_hard_impute(np.nan_to_num(A), M, 2)
    assert results["hard_impute_rounds"] == rounds < 500
    expected = np.sqrt(np.mean((Z[hidden.row, hidden.col] - truth) ** 2))
    assert results["hard_impute_rmse"] == pytest.approx(expected, rel=1e-9)
    U, V = factors(Path("lightning_logs/version_0"))[0]
    gd = ((U[hidden.row] * V[hidden.col]).sum(dim=1) - hidden.value).square().mean().sqrt()
    assert results["hidden_rmse"] == pytest.approx(float(gd), rel=1e-12)
    assert results["hidden_rmse"] < results["column_mean_rmse"]


def test_the_hidden_rmse_is_a_curve_in_results_and_tensorboard() -> None:
    """Validation measures the hidden entries after every Lightning epoch: results.json has a point per epoch, and
    the last is the final RMSE."""
    results = fit(*HIDE)
    points = results["curves"]["val"]
    assert [step for step, _ in points] == list(range(100, 1001, 100))
    assert points[-1][1]["rmse/hidden"] == [results["runs"][0]["hidden_rmse"]]
    events = list(Path("lightning_logs/version_0").glob("events.out.tfevents.*"))
    assert events


def test_predict_fills_in_the_hidden_entries(tmp_path: Path) -> None:
    """``predict`` with a completion checkpoint writes each hidden entry's estimate in the data's own units (cm):
    U Vᵀ plus the column's observed mean."""
    results = fit(*HIDE)["runs"][0]
    out = tmp_path / "filled.csv"
    lab2("predict", *HIDE, "--ckpt_path", "last", "--prediction.output", str(out), *QUIET)
    rows = list(csv.DictReader(out.open()))
    data = TableDataModule(holdout=0.2)
    assert len(rows) == len(data.hidden) == 120
    U, V = factors(Path("lightning_logs/version_0"))[0]
    for line in rows[:10]:
        r, c = int(line["row"]), int(line["column"])
        expected = float(U[r] @ V[c]) + float(data.shift[c])
        assert float(line["value"]) == pytest.approx(expected, rel=1e-9)
    raw = TableDataModule(preprocessing="none").train_x
    error = np.sqrt(np.mean([(float(x["value"]) - float(raw[int(x["row"]), int(x["column"])])) ** 2 for x in rows]))
    assert error == pytest.approx(results["hidden_rmse"], rel=1e-9)  # validation measured the same estimates


def test_predict_refuses_other_data_for_a_factorisation(fails: Callable[..., str]) -> None:
    fit(*HIDE, "--trainer.max_steps", "100")
    line = fails("predict", "--config", "factorise", "--ckpt_path", "last")
    assert "data.init_args.holdout" in line and "fills in the matrix it was trained on" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--config", "mlp", "--data.holdout", "0.2"), "divide_by_variance needs every entry"),
        (("--config", "mlp", "--data.holdout", "0.2", "--data.preprocessing", "centre"), "the MLP needs every feature"),
        (
            ("--config", "factorise", "--data.holdout", "0.2", "--data.preprocessing", "standardise"),
            "needs every entry",
        ),
        (("--config", "factorise", "--data.holdout", "0.0001"), "hides 0"),
        (("--config", "factorise", "--data.holdout", "1.5"), "holdout"),
    ],
)
def test_refusals(fails: Callable[..., str], args: tuple[str, ...], message: str) -> None:
    assert message in fails("fit", *args, *QUIET)


def test_synthetic_entries_are_distinct_and_low_rank() -> None:
    """``entries`` draws that many distinct places of the same matrix the dense module makes."""
    dense = SyntheticDataModule(rows=50, cols=30, rank=3, noise=0.0, seed=4, preprocessing="none")
    sparse = SyntheticDataModule(rows=50, cols=30, rank=3, noise=0.0, seed=4, entries=400, preprocessing="none")
    e = sparse.entries
    assert len(e) == 400 and len(set(zip(e.row.tolist(), e.col.tolist(), strict=True))) == 400
    X = torch.Generator().manual_seed(4)
    signal_X = torch.randn(50, 3, generator=X, dtype=torch.float64)
    signal_Y = torch.randn(30, 3, generator=X, dtype=torch.float64)
    expected = (signal_X @ signal_Y.T / 3**0.5)[e.row, e.col]
    assert torch.allclose(e.value, expected, atol=1e-12)
    assert dense.train_x.shape == (50, 30)


def test_triples_with_nothing_hidden_have_no_hidden_rmse(tmp_path: Path) -> None:
    """Without hidden entries there is nothing to validate: no RMSE is reported as the hidden entries'."""
    g = np.random.default_rng(2)
    row, col = np.nonzero(g.random((30, 8)) < 0.5)
    np.savez(tmp_path / "A.npz", row=row, col=col, value=g.standard_normal(len(row)))
    args = ("--data", "lab2_lightning.data.EntriesDataModule", "--data.path", str(tmp_path / "A.npz"))
    results = fit("--config", "complete", *args, "--data.holdout", "0", "--trainer.max_steps", "100")
    assert "hidden_rmse" not in results["runs"][0] and results["curves"]["val"] == []


def test_no_observed_entry_and_nothing_to_fill_in_are_refused(fails: Callable[..., str], tmp_path: Path) -> None:
    np.save(tmp_path / "empty.npy", np.full((5, 3), np.nan))
    args = ("--data.path", str(tmp_path / "empty.npy"), "--data.label_column", "null", "--data.allow_missing", "true")
    assert "nothing to factorise" in fails("fit", "--config", "complete", *args, "--data.holdout", "0", *QUIET)
    fit("--config", "factorise", "--trainer.max_steps", "100")
    line = fails("predict", "--config", "factorise", "--ckpt_path", "last", *QUIET)
    assert "nothing to fill in" in line


def test_a_resume_may_not_regroup_the_steps(fails: Callable[..., str]) -> None:
    """The steps per Lightning epoch decide when validation measures the hidden entries: a resume keeps them."""
    fit(*HIDE, "--trainer.max_steps", "100", "--data.steps_per_epoch", "50")
    line = fails("fit", *HIDE, "--trainer.max_steps", "300", "--data.steps_per_epoch", "20", "--ckpt_path", "last")
    assert "data.init_args.steps_per_epoch is 20 here but 50" in line


def test_a_gap_in_a_csv_is_refused_until_allowed(fails: Callable[..., str], tmp_path: Path) -> None:
    """Through the CLI: an empty cell is one error line (exit 2) naming its line, column and the option; with the
    option, the cell is a missing entry that predict fills in."""
    rows = [line.split(",")[:4] for line in Path(TableDataModule().source).read_text().split()]
    rows[2][1] = ""
    path = tmp_path / "gaps.csv"
    path.write_text("\n".join(",".join(row) for row in rows) + "\n")
    args = ("--config", "complete", "--data.path", str(path), "--data.holdout", "0", *QUIET)
    line = fails("fit", *args)
    assert f"{path}, line 3, column 2: empty cell" in line and "--data.allow_missing true" in line
    fit(*args[:-2], "--data.allow_missing", "true", "--trainer.max_steps", "100")
    out = tmp_path / "filled.csv"
    lab2("predict", *args, "--data.allow_missing", "true", "--ckpt_path", "last", "--prediction.output", str(out))
    filled = list(csv.DictReader(out.open()))
    assert [(row["row"], row["column"]) for row in filled] == [("2", "1")]


def test_gaps_in_the_validation_rows_only_leave_the_training_matrix_complete(tmp_path: Path) -> None:
    """Entries missing only in rows held out for validation: the training matrix is complete (so the SVD
    yardsticks apply), and the column means come from the observed entries of every row."""
    A = np.random.default_rng(0).standard_normal((60, 6))
    A[np.random.RandomState(0).permutation(60)[-1]] = np.nan  # the split's last validation row
    np.save(tmp_path / "A.npy", A)
    data = TableDataModule(str(tmp_path / "A.npy"), label_column=None, allow_missing=True, val_size=32)
    assert not data.missing and not data.train_x.isnan().any()
    assert torch.allclose(data.shift, torch.from_numpy(np.nanmean(A, axis=0)), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize(
    "schedule",
    [
        ["--trainer.val_check_interval", "40"],  # the last validation at step 280 of 300
        ["--trainer.check_val_every_n_epoch", "2"],  # at step 200
        ["--trainer.limit_val_batches", "0"],  # none
        ["--checkpoint.monitor", "hidden_rmse"],  # ModelCheckpoint writes only at the best step (about 100)
    ],
)
def test_the_results_and_the_checkpoint_are_the_final_weights_whatever_the_validation_schedule(
    schedule: list[str],
) -> None:
    """However validation is scheduled, the checkpoint holds the last step's weights, and the results' loss and
    hidden RMSE are theirs (against the RMSE and summed squared error computed here from those weights)."""
    data = TableDataModule(holdout=0.2)
    results = fit(*HIDE, "--trainer.max_steps", "300", *schedule)
    run = Path("lightning_logs/version_0")
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 300
    [(U, V)] = factors(run)
    hidden, seen = data.hidden, ~data.train_x.isnan()
    rmse = float(((U[hidden.row] * V[hidden.col]).sum(dim=1) - hidden.value).square().mean().sqrt())
    loss = float(((U @ V.T)[seen] - data.train_x[seen]).square().sum())
    assert results["runs"][0]["hidden_rmse"] == pytest.approx(rmse, rel=1e-12)
    assert results["runs"][0]["gd_loss"] == pytest.approx(loss, rel=1e-12)
