"""Exercise 1: the LightningModule against the lab's plain loop, and its yardsticks against independent algebra."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from conftest import FACTORISE_SEEDS, QUIET, Run, fit, iris_centred, plain_factors, summed_squared_error
from torch import nn

from lab2_lightning.data import SyntheticDataModule
from lab2_lightning.models import LowRankFactorisation
from lab2_lightning.models.linalg import auto_lr, linear_map_residual, pca_scores, principal_angles, svd_optimum


@pytest.mark.parametrize("member", range(len(FACTORISE_SEEDS)))
def test_every_seed_equals_the_plain_loop_bitwise(factorise_run: Run, member: int) -> None:
    """Each member of a multi-seed fit ends with exactly the U, V and loss of the lab's gd_factorise_ad for its seed."""
    seed = FACTORISE_SEEDS[member]
    U, V = plain_factors(seed)
    state = factorise_run.state_dict()
    assert torch.equal(state[f"U.{member}"], U)
    assert torch.equal(state[f"V.{member}"], V)
    run = factorise_run.results["runs"][member]
    assert run["seed"] == seed
    assert run["steps"] == 1000
    assert run["gd_loss"] == summed_squared_error(U, V)


def test_results_json_holds_what_the_command_returned(factorise_run: Run) -> None:
    """results.json in the run's folder holds the returned runs, and a curve per member with a point per step."""
    written = factorise_run.written()
    assert written["runs"] == factorise_run.results["runs"]
    assert len(written["curves"]["train"]) == len(FACTORISE_SEEDS)  # one curve per member
    assert all(len(curve) == 1000 for curve in written["curves"]["train"])  # one point per step


def test_the_curve_is_the_plain_loops_losses(factorise_run: Run) -> None:
    """The curve's first point is the loss of the initial factors and it falls to near the final loss."""
    curve = factorise_run.results["curves"]["train"][0]
    torch.manual_seed(FACTORISE_SEEDS[0])
    U0 = torch.rand(150, 2).double()
    V0 = torch.rand(4, 2).double()
    assert curve[0] == summed_squared_error(U0, V0)
    assert curve[-1] == pytest.approx(factorise_run.results["runs"][0]["gd_loss"], rel=1e-6)


def test_several_ranks_in_one_run_each_equal_a_separate_plain_run(tmp_path: Path) -> None:
    """``--model.rank [1,2,3]`` with one seed trains three members, each bitwise the plain loop at its rank."""
    results = fit(
        "--config", "factorise", "--model.rank", "[1,2,3]", "--model.seeds", "[0]", "--trainer.max_steps", "300"
    )
    state = torch.load(tmp_path / "lightning_logs/version_0/checkpoints/last.ckpt", weights_only=False)["state_dict"]
    for member, rank in enumerate((1, 2, 3)):
        U, V = plain_factors(0, rank, steps=300)
        assert state[f"U.{member}"].shape == (150, rank)
        assert torch.equal(state[f"U.{member}"], U)
        assert torch.equal(state[f"V.{member}"], V)
        run = results["runs"][member]
        assert (run["seed"], run["rank"], run["steps"]) == (0, rank, 300)
        assert run["gd_loss"] == summed_squared_error(U, V)


def test_svd_loss_equals_the_discarded_singular_values(factorise_run: Run) -> None:
    """svd_loss is the sum of the squared singular values a rank-2 SVD drops: 15.2288 on the packaged Iris."""
    singular_values = torch.linalg.svd(iris_centred(), full_matrices=False).S
    expected = float((singular_values[2:] ** 2).sum())
    for run in factorise_run.results["runs"]:
        assert run["svd_loss"] == pytest.approx(expected, rel=1e-12)
        assert round(run["svd_loss"], 4) == 15.2288
        assert run["relative_gap"] == pytest.approx((run["gd_loss"] - expected) / expected, rel=1e-9)
        assert 0 < run["relative_gap"] < 0.01


def test_svd_loss_is_the_best_any_rank_2_matrix_does(factorise_run: Run) -> None:
    """The truncated SVD reconstruction's error equals svd_loss, and GD's factors do no better."""
    A = iris_centred()
    U, S, Vh = torch.linalg.svd(A, full_matrices=False)
    truncated = U[:, :2] @ torch.diag(S[:2]) @ Vh[:2]
    best = float(((truncated - A) ** 2).sum())
    for run in factorise_run.results["runs"]:
        assert run["svd_loss"] == pytest.approx(best, rel=1e-10)
        assert run["gd_loss"] >= best


def test_full_rank_has_no_relative_gap(tmp_path: Path) -> None:
    """At rank 4, the data's own, the optimum is 0 and the relative gap is null, not a division by rounding."""
    results = fit("--config", "factorise", "--model.rank", "4", "--trainer.max_steps", "20")
    run = results["runs"][0]
    assert run["rank"] == 4
    assert run["svd_loss"] < 1e-9
    assert run["relative_gap"] is None
    assert (
        json.loads((tmp_path / "lightning_logs/version_0/results.json").read_text())["runs"][0]["relative_gap"] is None
    )


def test_lr_auto_is_the_documented_step_and_trains_as_the_plain_loop(tmp_path: Path) -> None:
    """``--model.lr auto`` picks auto_lr of the initial factors, and the run equals the plain loop at that step."""
    results = fit("--config", "factorise", "--model.lr", "auto", "--trainer.max_steps", "200")
    lr = results["runs"][0]["lr"]
    torch.manual_seed(0)
    U0, V0 = torch.rand(150, 2).double(), torch.rand(4, 2).double()
    assert lr == auto_lr(U0, V0, iris_centred())
    assert 0 < lr < 0.01
    U, _ = plain_factors(0, 2, steps=200, lr=lr)
    state = torch.load(tmp_path / "lightning_logs/version_0/checkpoints/last.ckpt", weights_only=False)["state_dict"]
    assert torch.equal(state["U.0"], U)
    curve = results["curves"]["train"][0]
    assert all(later <= earlier for earlier, later in itertools.pairwise(curve))


def test_a_divergent_lr_stops_with_the_step_and_the_lr(fails: Callable[..., str], tmp_path: Path) -> None:
    """``--model.lr 1.0`` diverges: exit 2 and one line naming the step it happened at and the lr to lower."""
    line = fails("fit", "--config", "factorise", "--model.lr", "1.0", "--trainer.enable_progress_bar", "false")
    assert re.search(r"step \d+", line), line
    assert "lr" in line
    assert "1.0" in line
    assert not (tmp_path / "lightning_logs/version_0/results.json").exists()


def test_too_large_a_rank_is_refused(fails: Callable[..., str]) -> None:
    """A rank above min(rows, columns) exits 2 naming model.rank and the limit."""
    line = fails("fit", "--config", "factorise", "--model.rank", "5")
    assert "rank" in line
    assert "4" in line


class _Losses(nn.Module):
    """The module's member_losses as a forward, so torch.func.functional_call can swap its parameters."""

    def __init__(self, inner: LowRankFactorisation) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, batch: dict[str, object]) -> torch.Tensor:
        return self.inner.member_losses(batch)


def test_the_loss_gradient_passes_gradcheck_and_matches_the_closed_form() -> None:
    """The module's loss has autograd gradients that match finite differences, and 2 (U Vᵀ − A) V, 2 (U Vᵀ − A)ᵀ U."""
    module = LowRankFactorisation(n_rows=6, n_features=4, rank=2, seeds=[0]).double()
    A = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    batch = {"x": A, "rows": slice(0, 6)}
    losses = _Losses(module)

    def loss(U: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(losses, {"inner.U.0": U, "inner.V.0": V}, (batch,))

    U = module.U[0].detach().clone().requires_grad_()
    V = module.V[0].detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(loss, (U, V))
    module.member_losses(batch).sum().backward()
    residual = module.U[0].detach() @ module.V[0].detach().T - A
    assert torch.allclose(module.U[0].grad, 2 * residual @ module.V[0].detach())
    assert torch.allclose(module.V[0].grad, 2 * residual.T @ module.U[0].detach())


def test_the_randomized_optimum_agrees_with_the_exact_one() -> None:
    """On a low-rank-plus-noise matrix (a gap after the rank), the randomized SVD's optimum equals the exact one."""
    A = SyntheticDataModule(rows=400, cols=60, rank=5, noise=0.01, seed=3).train_x
    exact, method = svd_optimum(A, 5, "exact")
    assert method == "exact"
    randomized, method = svd_optimum(A, 5, "randomized")
    assert method == "randomized"
    assert randomized == pytest.approx(exact, rel=1e-6)
    assert svd_optimum(A, 5, "auto")[1] == "exact"  # 60 columns: small enough for every singular value


def test_gd_factors_spanning_the_pca_subspace_give_zero_angles_and_residual() -> None:
    """U = (PCA scores) M for an invertible M has principal angles 0 and a linear-map residual 0; an unrelated U
    does not."""
    A = iris_centred()
    scores = pca_scores(A, 2)
    M = torch.tensor([[2.0, 1.0], [-0.5, 3.0]], dtype=torch.float64)
    U = scores @ M
    assert principal_angles(U, scores).abs().max() < 1e-6
    assert linear_map_residual(U, scores) < 1e-10
    other = torch.rand(150, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert principal_angles(other, scores).max() > 0.1
    assert linear_map_residual(other, scores) > 0.1


def test_the_labs_u_spans_the_pca_subspace(factorise_run: Run) -> None:
    """After 1000 steps GD's U spans nearly the first two principal axes (the lab's "rotation and scaling"): the
    results' angles and residual agree with a computation from the checkpoint's U."""
    U = factorise_run.state_dict()["U.0"]
    scores = pca_scores(iris_centred(), 2)
    run = factorise_run.results["runs"][0]
    assert run["principal_angles_deg"] == pytest.approx(torch.rad2deg(principal_angles(U, scores)).tolist(), abs=1e-9)
    assert run["map_residual"] == pytest.approx(linear_map_residual(U, scores), rel=1e-9)
    assert max(run["principal_angles_deg"]) < 1.0
    assert run["map_residual"] < 0.01


@pytest.mark.parametrize(
    ("option", "named"),
    [
        (["--trainer.precision", "16-true", "--model.lr", "auto"], "trainer.precision 16-true"),
        (["--trainer.precision", "bf16-mixed"], "trainer.precision bf16-mixed"),
        (["--data.val_size", "10"], "data.val_size 10"),
    ],
)
def test_what_the_factorisation_cannot_take_is_refused_before_it_runs(
    fails: Callable[..., str], tmp_path: Path, option: list[str], named: str
) -> None:
    """Half precisions (its sums lose the digits the results show) and rows held out whole (it learns every row):
    one line naming the option, and no run folder."""
    assert named in fails("fit", "--config", "complete", "--trainer.max_steps", "2", *option, *QUIET)
    assert not any((tmp_path / "lightning_logs").iterdir())
