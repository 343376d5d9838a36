"""Exercise 1: the SVD yardstick, the seed contract, and Lightning against the lab's plain loop."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F

from lab2_lightning.data.datamodule import IrisDataModule
from lab2_lightning.models.factorisation import LowRankFactorisation
from lab2_lightning.models.linalg import linear_map_residual, principal_angles, svd_optimum_loss
from lab2_lightning.models.reference import gd_factorise_ad


def fit(model: pl.LightningModule, data: pl.LightningDataModule, steps: int, **trainer: object) -> pl.Trainer:
    trainer_ = pl.Trainer(
        max_steps=steps,
        precision="64-true",
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **trainer,
    )
    trainer_.fit(model, datamodule=data)
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
    torch.manual_seed(seed)
    assert torch.equal(model.U.data, torch.rand(150, 2))
    assert torch.equal(model.V.data, torch.rand(4, 2))


@pytest.mark.parametrize("seed", [0, 1])
def test_lightning_matches_the_labs_plain_loop(seed: int) -> None:
    data = IrisDataModule(preprocessing="centre", steps_per_epoch=100)
    pl.seed_everything(seed)
    model = LowRankFactorisation(n_rows=data.n_rows, n_features=data.n_features, rank=2, lr=0.01)
    fit(model, data, steps=1000)

    torch.manual_seed(seed)
    U, V = gd_factorise_ad(data.train_x, rank=2, num_epochs=1000, lr=0.01)
    assert model.U.dtype == torch.float64
    torch.testing.assert_close(model.U.data, U, rtol=0, atol=1e-10)
    torch.testing.assert_close(model.V.data, V, rtol=0, atol=1e-10)


def test_gd_reaches_the_svd_optimum_within_one_percent() -> None:
    data = IrisDataModule(preprocessing="centre", steps_per_epoch=100)
    pl.seed_everything(0)
    model = LowRankFactorisation(n_rows=data.n_rows, n_features=data.n_features)
    trainer = fit(model, data, steps=1000)
    results = model.results()
    assert trainer.global_step == results["epochs"] == 1000
    assert results["svd_loss"] <= results["gd_loss"] <= 1.01 * results["svd_loss"]
    with torch.no_grad():
        reconstruction = float(F.mse_loss(model.U @ model.V.T, data.train_x, reduction="sum"))
    assert results["gd_loss"] == pytest.approx(reconstruction)
    # At the optimum span(U) is the top principal subspace: U is a linear map of the PCA scores.
    assert max(results["principal_angles_deg"]) < 1.0
    assert results["map_residual"] < 0.01
