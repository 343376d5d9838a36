"""On a CUDA GPU both exercises give the CPU's numbers (to rounding): run with ``-m gpu``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import Run, fit, plain_factors, summed_squared_error

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
ON_GPU = ("--trainer.accelerator", "gpu", "--trainer.devices", "1")
CHECKPOINT = "lightning_logs/version_0/checkpoints/last.ckpt"


def test_the_factorisation_on_a_gpu_is_the_cpu_loop(tmp_path: Path) -> None:
    """``fit --config factorise --trainer.accelerator gpu`` (float64) ends within 1e-9 of the plain CPU loop, for
    every seed."""
    results = fit("--config", "factorise", "--model.seeds", "[0,1,2]", *ON_GPU)
    for seed, run in zip((0, 1, 2), results["runs"], strict=True):
        assert run["gd_loss"] == pytest.approx(summed_squared_error(*plain_factors(seed)), rel=1e-9)
        assert round(run["svd_loss"], 4) == 15.2288
    state = torch.load(tmp_path / CHECKPOINT, map_location="cpu", weights_only=False)
    assert torch.allclose(state["state_dict"]["U.0"], plain_factors(0)[0], rtol=1e-7, atol=1e-9)


def test_the_mlp_on_a_gpu_is_the_cpu_run(mlp_run: Run) -> None:
    """``fit --config mlp --trainer.accelerator gpu`` (float32) has the CPU run's weights to float32 rounding and, in
    practice, its accuracies."""
    results = fit("--config", "mlp", "--model.seeds", "[0,1,2]", *ON_GPU)
    state = torch.load(Path(CHECKPOINT), map_location="cpu", weights_only=False)
    cpu = mlp_run.state_dict()
    for name in ("W1.0", "W2.0", "b1.0", "b2.0", "W1.2"):
        assert torch.allclose(state["state_dict"][name], cpu[name], rtol=1e-4, atol=1e-4), name
    for gpu_run, cpu_run in zip(results["runs"], mlp_run.results["runs"], strict=True):
        assert gpu_run["val"]["acc"] == pytest.approx(cpu_run["val"]["acc"], abs=0.021)  # at most one row of 50
        assert gpu_run["val"]["loss"] == pytest.approx(cpu_run["val"]["loss"], rel=1e-3)


def test_completion_on_a_gpu_is_the_cpu_run() -> None:
    """``fit --config complete`` (the masked loss, the hidden entries' RMSE, the yardsticks) and a synthetic matrix's
    triples on the GPU give the CPU's numbers, to rounding."""
    sparse = (
        *("--data", "lab2_lightning.data.SyntheticDataModule", "--data.entries", "20000", "--data.holdout", "0.1"),
        *("--model.rank", "10", "--model.lr", "auto", "--model.init", "normal", "--trainer.max_steps", "200"),
    )
    for extra in ((), sparse):
        cpu = fit("--config", "complete", *extra)["runs"][0]
        gpu = fit("--config", "complete", *extra, *ON_GPU)["runs"][0]
        for key in ("gd_loss", "hidden_rmse", "column_mean_rmse", "hard_impute_rmse"):
            assert gpu[key] == pytest.approx(cpu[key], rel=1e-6), key
