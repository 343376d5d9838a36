"""Large-matrix support: the closed-form gradient, matrix files, the synthetic generator, auto lr, randomized SVD."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lab2_lightning.data.datamodule import IrisDataModule
from lab2_lightning.data.synthetic import SyntheticMatrix
from lab2_lightning.models.linalg import auto_lr, largest_singular_value, svd_optimum
from lab2_lightning.models.lowrank import low_rank_squared_error


@pytest.mark.parametrize(("m", "n", "r"), [(150, 4, 2), (37, 23, 5), (8, 30, 8)])
def test_closed_form_gradients_equal_autograd(m: int, n: int, r: int) -> None:
    generator = torch.Generator().manual_seed(m)
    A = torch.randn(m, n, dtype=torch.float64, generator=generator)
    U1 = torch.rand(m, r, dtype=torch.float64, generator=generator).requires_grad_()
    V1 = torch.rand(n, r, dtype=torch.float64, generator=generator).requires_grad_()
    U2, V2 = U1.detach().clone().requires_grad_(), V1.detach().clone().requires_grad_()
    reference = F.mse_loss(U1 @ V1.T, A, reduction="sum")
    reference.backward()
    loss = low_rank_squared_error(U2, V2, A)
    loss.backward()
    torch.testing.assert_close(loss, reference, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(U2.grad, U1.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(V2.grad, V1.grad, rtol=1e-12, atol=1e-12)


def test_closed_form_gradcheck() -> None:
    generator = torch.Generator().manual_seed(1)
    inputs = [torch.rand(6, 2, dtype=torch.float64, generator=generator, requires_grad=True) for _ in range(2)]
    A = torch.randn(6, 6, dtype=torch.float64, generator=generator)
    assert torch.autograd.gradcheck(lambda U, V: low_rank_squared_error(U, V, A), inputs)


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
    assert results["lr_setting"] == "auto" and 0 < results["lr"] < 0.01
    assert results["relative_gap"] < 0.01
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
    assert results["rank"] == 16 and results["gradient"] == "closed_form" and results["epochs"] == 20
    assert results["settings"]["data"]["dtype"] == "float32" and results["svd_method"] == "exact"
