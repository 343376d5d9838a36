"""Exercise 1: the SVD yardstick, the seed contract, and Lightning against the lab's plain loop."""

from __future__ import annotations

import math
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint

from lab2_lightning.callbacks import EckartYoungComparison, RunSummary
from lab2_lightning.data.datamodule import IrisDataModule
from lab2_lightning.models.factorisation import LowRankFactorisation
from lab2_lightning.models.linalg import linear_map_residual, principal_angles, svd_optimum_loss
from lab2_lightning.models.reference import gd_factorise_ad


def fit(
    model: pl.LightningModule, data: pl.LightningDataModule, steps: int, ckpt_path: str | None = None,
    weights_only: bool | None = None, **trainer: object,
) -> pl.Trainer:  # fmt: skip
    settings = {"precision": "64-true", "logger": False, "enable_checkpointing": False} | trainer
    trainer_ = pl.Trainer(
        max_steps=steps, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False, **settings
    )
    trainer_.fit(model, datamodule=data, ckpt_path=ckpt_path, weights_only=weights_only)
    return trainer_


def test_svd_loss_on_the_packaged_file() -> None:
    A = IrisDataModule(preprocessing="centre").train_x
    assert round(svd_optimum_loss(A, 2), 4) == 15.2288


@pytest.mark.parametrize("rank", [1, 2, 3, 4])
def test_svd_optimum_equals_explicit_truncated_reconstruction(rank: int) -> None:
    A = IrisDataModule(preprocessing="centre").train_x
    U, S, Vh = torch.linalg.svd(A, full_matrices=False)
    A_r = U[:, :rank] @ torch.diag(S[:rank]) @ Vh[:rank]
    expected = float(F.mse_loss(A_r, A, reduction="sum"))
    assert svd_optimum_loss(A, rank) == pytest.approx(expected, rel=1e-10, abs=1e-10)


def test_principal_angles_and_map_residual() -> None:
    generator = torch.Generator().manual_seed(0)
    X = torch.randn(20, 2, dtype=torch.float64, generator=generator)
    mixed = X @ torch.tensor([[2.0, 1.0], [-0.5, 3.0]], dtype=torch.float64)  # same span, other basis
    assert principal_angles(X, mixed).abs().max() < 1e-7
    assert linear_map_residual(X, mixed) < 1e-12
    e = torch.eye(4, dtype=torch.float64)
    assert torch.allclose(principal_angles(e[:, :2], e[:, 2:]), torch.full((2,), math.pi / 2, dtype=torch.float64))
    assert linear_map_residual(e[:, :2], e[:, 2:]) == pytest.approx(1.0)


@pytest.mark.parametrize("seed", [0, 7])
def test_initialisation_follows_the_seed_contract(seed: int) -> None:
    pl.seed_everything(seed)
    model = LowRankFactorisation(n_rows=150, n_features=4, rank=2)
    assert model.seeds == [seed]
    torch.manual_seed(seed)
    assert torch.equal(model.U.data[0], torch.rand(150, 2))
    assert torch.equal(model.V.data[0], torch.rand(4, 2))


def test_members_start_from_their_own_seeds_and_ranks() -> None:
    model = LowRankFactorisation(n_rows=150, n_features=4, rank=[1, 3], seeds=[4, 9])
    assert model.U.shape == (2, 150, 3) and model.V.shape == (2, 4, 3)
    for member, (seed, rank) in enumerate([(4, 1), (9, 3)]):
        torch.manual_seed(seed)
        assert torch.equal(model.U.data[member, :, :rank], torch.rand(150, rank))
        assert torch.equal(model.V.data[member, :, :rank], torch.rand(4, rank))
        assert not model.U.data[member, :, rank:].any() and not model.V.data[member, :, rank:].any()
    assert model.member_names() == ["seed_4_rank_1", "seed_9_rank_3"]


@pytest.mark.parametrize("seed", [0, 1])
def test_lightning_matches_the_labs_plain_loop(seed: int) -> None:
    data = IrisDataModule(preprocessing="centre", steps_per_epoch=100)
    model = LowRankFactorisation(n_rows=data.n_rows, n_features=data.n_features, rank=2, lr=0.01, seeds=[seed])
    fit(model, data, steps=1000)

    torch.manual_seed(seed)
    U, V = gd_factorise_ad(data.train_x, rank=2, num_epochs=1000, lr=0.01)
    assert model.U.dtype == torch.float64
    # Bit for bit: the same draws, the same loss and gradient, the lab's own update (PlainGradientStep).
    assert torch.equal(model.U.data[0], U) and torch.equal(model.V.data[0], V)


def test_batched_seeds_equal_separate_runs_bitwise() -> None:
    """Ten seeds in one training give, bit for bit, each seed's own single-seed training (float64)."""
    data = IrisDataModule(preprocessing="centre", steps_per_epoch=100)
    batched = LowRankFactorisation(seeds=list(range(10)))
    fit(batched, data, steps=200)
    for seed in range(10):
        alone = LowRankFactorisation(seeds=[seed])
        fit(alone, data, steps=200)
        assert torch.equal(batched.U.data[seed], alone.U.data[0]), seed
        assert torch.equal(batched.V.data[seed], alone.V.data[0]), seed
        assert batched.final_loss[seed] == alone.final_loss[0]


def test_padded_ranks_stay_exactly_zero_and_match_their_own_rank() -> None:
    data = IrisDataModule(preprocessing="centre", steps_per_epoch=100)
    sweep = LowRankFactorisation(seeds=[0], rank=[1, 3, 4])
    fit(sweep, data, steps=300)
    for member, rank in enumerate([1, 3, 4]):
        assert not sweep.U.data[member, :, rank:].any() and not sweep.V.data[member, :, rank:].any()
        alone = LowRankFactorisation(seeds=[0], rank=rank)
        fit(alone, data, steps=300)
        torch.testing.assert_close(sweep.U.data[member, :, :rank], alone.U.data[0], rtol=0, atol=1e-12)


def test_gd_reaches_the_svd_optimum_within_one_percent() -> None:
    data = IrisDataModule(preprocessing="centre", steps_per_epoch=100)
    model = LowRankFactorisation(n_rows=data.n_rows, n_features=data.n_features, seeds=[0, 1])
    summary = RunSummary()
    trainer = fit(model, data, steps=1000, callbacks=[EckartYoungComparison(), summary])
    assert len(summary.runs) == 2
    for member, results in enumerate(summary.runs):
        assert trainer.global_step == results["epochs"] == 1000 and results["seed"] == member
        assert results["svd_loss"] == pytest.approx(svd_optimum_loss(data.train_x, 2), abs=1e-12)
        assert results["svd_loss"] <= results["gd_loss"] <= 1.01 * results["svd_loss"]
        U, V = model.factors(member)
        reconstruction = float(F.mse_loss(U @ V.T, data.train_x, reduction="sum"))
        assert results["gd_loss"] == pytest.approx(reconstruction, rel=1e-12)
        assert results["relative_gap"] == pytest.approx((reconstruction - results["svd_loss"]) / results["svd_loss"])
        # At the optimum span(U) is the top principal subspace: U is a linear map of the PCA scores.
        assert max(results["principal_angles_deg"]) < 1.0
        assert results["map_residual"] < 0.01


def test_resumed_training_keeps_every_step_of_its_curve(tmp_path: Path) -> None:
    """The curves travel in the checkpoint: a run resumed at step 40 reports all 100 steps, as if never stopped."""
    data = IrisDataModule(preprocessing="centre", steps_per_epoch=20)
    whole = LowRankFactorisation(seeds=[0, 3])
    fit(whole, data, steps=100)

    first = LowRankFactorisation(seeds=[0, 3])
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    fit(first, data, steps=40, enable_checkpointing=True, callbacks=[checkpoint])
    resumed = LowRankFactorisation(seeds=[0, 3])
    pl.Trainer(
        max_steps=100, precision="64-true", accelerator="cpu", logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False,
    ).fit(resumed, datamodule=data, ckpt_path=str(tmp_path / "last.ckpt"), weights_only=True)  # fmt: skip

    assert torch.equal(resumed.U.data, whole.U.data) and torch.equal(resumed.V.data, whole.V.data)
    for member in range(2):
        assert resumed.curve("train/loss", member) == whole.curve("train/loss", member)
    assert resumed.curve("train/loss")["step"] == list(range(1, 101))


class BatchEnds(Callback):
    """The global step at the end of each of Lightning's training batches."""

    def __init__(self) -> None:
        self.steps: list[int] = []

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: object) -> None:
        self.steps.append(trainer.global_step)


@pytest.mark.parametrize(
    ("steps", "per_batch", "batch_ends"),
    [(200, 10, range(10, 201, 10)), (200, 30, range(10, 201, 10)), (200, 1, range(1, 201)), (25, 10, range(5, 26, 5))],
    ids=["10", "30-lowered-to-10", "1", "max_steps-25"],
)
def test_several_steps_per_batch_change_no_number(steps: int, per_batch: int, batch_ends: range) -> None:
    """``data.steps_per_batch`` only groups steps for Lightning: each member's weights are the lab's loop's, bit for
    bit, every step is on the curves, and the batches divide the epochs (100 steps; 25 steps: epochs of 5)."""
    data = IrisDataModule(preprocessing="centre", steps_per_epoch=100, steps_per_batch=per_batch)
    model = LowRankFactorisation(seeds=[0, 1])
    ends = BatchEnds()
    trainer = fit(model, data, steps=steps, callbacks=[ends])

    for seed in (0, 1):
        torch.manual_seed(seed)
        U, V = gd_factorise_ad(data.train_x, rank=2, num_epochs=steps, lr=0.01)
        assert torch.equal(model.U.data[seed], U) and torch.equal(model.V.data[seed], V)
    assert trainer.global_step == steps and ends.steps == list(batch_ends)
    one_per_batch = LowRankFactorisation(seeds=[0, 1])
    fit(one_per_batch, IrisDataModule(preprocessing="centre", steps_per_epoch=100), steps=steps)
    for member in (0, 1):
        assert model.curve("train/loss", member) == one_per_batch.curve("train/loss", member)
    assert model.curve("train/loss")["step"] == list(range(1, steps + 1))
    assert torch.equal(model.final_loss, one_per_batch.final_loss)


def test_resume_off_the_batch_grid_gets_back_on_it(tmp_path: Path) -> None:
    """A checkpoint at step 35 resumed with batches of 10 steps: the first batch takes 5, the next ones end on
    multiples of 10 (where checkpoint intervals lie), and the run ends at max_steps with the uninterrupted weights."""
    whole = LowRankFactorisation(seeds=[0])
    fit(whole, IrisDataModule(preprocessing="centre", steps_per_epoch=100), steps=100)

    first = LowRankFactorisation(seeds=[0])
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    fit(first, IrisDataModule(preprocessing="centre", steps_per_epoch=5), steps=35, enable_checkpointing=True,
        callbacks=[checkpoint])  # fmt: skip
    resumed, ends = LowRankFactorisation(seeds=[0]), BatchEnds()
    trainer = fit(resumed, IrisDataModule(preprocessing="centre", steps_per_epoch=100, steps_per_batch=10), steps=100,
                  callbacks=[ends], ckpt_path=str(tmp_path / "last.ckpt"), weights_only=True)  # fmt: skip
    assert trainer.global_step == 100 and ends.steps == list(range(40, 101, 10))
    assert torch.equal(resumed.U.data, whole.U.data) and torch.equal(resumed.V.data, whole.V.data)
    assert resumed.curve("train/loss") == whole.curve("train/loss")


def test_a_run_bounded_by_epochs_reports_its_final_loss() -> None:
    """``max_epochs`` instead of ``max_steps`` (2 epochs of 100 steps): the last epoch's end is the last step, so the
    final loss is measured (it was missing, and the yardsticks failed on it)."""
    data = IrisDataModule(preprocessing="centre", steps_per_epoch=100, steps_per_batch=10)
    model = LowRankFactorisation(seeds=[0])
    summary = RunSummary()
    trainer = fit(model, data, steps=-1, max_epochs=2, callbacks=[EckartYoungComparison(), summary])
    torch.manual_seed(0)
    U, V = gd_factorise_ad(data.train_x, rank=2, num_epochs=200, lr=0.01)
    (results,) = summary.runs
    assert trainer.global_step == results["epochs"] == 200
    assert results["gd_loss"] == float(F.mse_loss(U @ V.T, data.train_x, reduction="sum"))


def test_early_stopping_at_an_epochs_end_reports_the_final_loss() -> None:
    """EarlyStopping decides after the epoch's last batch: the final loss is still measured (it was missing, and
    the yardsticks failed on it), and it is the plain loop's after as many steps."""
    data = IrisDataModule(preprocessing="centre", steps_per_epoch=100, steps_per_batch=10)
    model, summary = LowRankFactorisation(seeds=[0]), RunSummary()
    stopper = EarlyStopping(monitor="train/loss", min_delta=0.01, patience=1)
    trainer = fit(model, data, steps=5000, callbacks=[stopper, EckartYoungComparison(), summary])
    assert 0 < trainer.global_step < 5000 and trainer.global_step % 100 == 0
    torch.manual_seed(0)
    U, V = gd_factorise_ad(data.train_x, rank=2, num_epochs=trainer.global_step, lr=0.01)
    assert summary.runs[0]["gd_loss"] == float(F.mse_loss(U @ V.T, data.train_x, reduction="sum"))
