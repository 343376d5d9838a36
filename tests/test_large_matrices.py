"""Large-matrix support: matrix files, the synthetic generator, auto lr, randomized SVD (the closed-form loss has
tests/test_lowrank.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from lab2_lightning.data.datamodule import IrisDataModule
from lab2_lightning.data.synthetic import SyntheticMatrix
from lab2_lightning.models.linalg import auto_lr, largest_singular_value, svd_optimum


def test_synthetic_matrix_is_low_rank_plus_noise() -> None:
    spec = SyntheticMatrix(rows=300, cols=80, rank=5, noise=0.01, seed=3)
    A = spec.generate()
    assert A.shape == (300, 80) and torch.equal(A, spec.generate())
    singular = torch.linalg.svdvals(A)
    assert singular[4] > 50 * singular[5]  # five strong directions, then noise
    assert not torch.equal(A, SyntheticMatrix(rows=300, cols=80, rank=5, noise=0.01, seed=4).generate())


def test_randomized_svd_optimum_matches_exact() -> None:
    A = SyntheticMatrix(rows=1500, cols=1200, rank=8, noise=0.1).generate()
    exact, method = svd_optimum(A, 8, "exact")
    randomized, chosen = svd_optimum(A, 8, "auto")
    assert (method, chosen) == ("exact", "randomized")
    assert randomized == pytest.approx(exact, rel=1e-6)


def test_largest_singular_value() -> None:
    A = SyntheticMatrix(rows=200, cols=50, rank=3, noise=0.1).generate()
    assert largest_singular_value(A) == pytest.approx(float(torch.linalg.svdvals(A)[0]), rel=1e-6)


@pytest.mark.parametrize("suffix", [".npy", ".pt", ".csv"])
def test_matrix_files(tmp_path: Path, suffix: str) -> None:
    A = np.arange(12, dtype=np.float64).reshape(4, 3) ** 1.5
    path = tmp_path / f"matrix{suffix}"
    if suffix == ".npy":
        np.save(path, A)
    elif suffix == ".pt":
        torch.save(torch.from_numpy(A).float(), path)
    else:
        np.savetxt(path, A, delimiter=",")
    data = IrisDataModule(path=str(path), preprocessing="none")
    assert (data.n_rows, data.n_features, data.n_classes) == (4, 3, 0)
    np.testing.assert_allclose(data.train_x.numpy(), A, rtol=1e-6)


def test_bad_matrix_files(tmp_path: Path, cli_error: Callable[..., str], configs: Path) -> None:
    bad = tmp_path / "bad.npy"
    np.save(bad, np.array([[1.0, np.inf], [0.0, 1.0]]))
    assert "row 1, column 2: inf is not a finite number" in cli_error(
        "--config", str(configs / "factorise.yaml"), "--data.path", str(bad)
    )
    flat = tmp_path / "flat.npy"
    np.save(flat, np.zeros(5))
    assert "expected a non-empty 2-D matrix" in cli_error(
        "--config", str(configs / "factorise.yaml"), "--data.path", str(flat)
    )
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a tensor")
    assert "not a readable .pt matrix" in cli_error(
        "--config", str(configs / "factorise.yaml"), "--data.path", str(corrupt)
    )


def test_auto_lr_factorises_a_synthetic_matrix(configs: Path, run_cli: Callable[..., dict[str, Any]]) -> None:
    results = run_cli(
        "--config", str(configs / "factorise.yaml"), "--data.synthetic.rows", "400", "--data.synthetic.cols", "60",
        "--data.synthetic.rank", "3", "--data.synthetic.noise", "0.05", "--model.rank", "3", "--model.lr", "auto",
        "--model.gradient", "closed_form", "--trainer.max_steps", "3000",
    )  # fmt: skip
    (run,) = results["runs"]
    assert run["lr_setting"] == "auto" and 0 < run["lr"] < 0.01
    assert run["relative_gap"] < 0.01
    assert results["data"].startswith("synthetic")


def test_auto_lr_on_iris_is_below_the_labs() -> None:
    torch.manual_seed(0)
    U, V = torch.rand(150, 2).double(), torch.rand(4, 2).double()
    assert 0.004 < auto_lr(U, V, IrisDataModule().train_x) < 0.01


def test_large_config_runs_scaled_down(configs: Path, run_cli: Callable[..., dict[str, Any]]) -> None:
    results = run_cli(
        "--config", str(configs / "large.yaml"), "--data.synthetic.rows", "300", "--data.synthetic.cols", "40",
        "--trainer.max_steps", "20", "--data.steps_per_epoch", "10",
    )  # fmt: skip
    (run,) = results["runs"]
    assert run["rank"] == 16 and run["gradient"] == "closed_form" and run["epochs"] == 20
    assert results["settings"]["data"]["dtype"] == "float32" and run["svd_method"] == "exact"
