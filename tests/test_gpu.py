"""The same runs on a CUDA GPU and on the CPU give the same numbers. Run with ``pytest -m gpu``; skips without a GPU."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from lab2_lightning.cli import run as cli_run

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def run(tmp_path: Path, *args: str) -> dict[str, Any]:
    return cli_run(["fit", *args, "--trainer.default_root_dir", str(tmp_path), "--progress_bar.enabled", "false"])


def test_factorisation_on_gpu_matches_cpu(tmp_path: Path, configs: Path) -> None:
    gpu = run(tmp_path / "gpu", "--config", str(configs / "factorise.yaml"), "--accelerator", "gpu")
    cpu = run(tmp_path / "cpu", "--config", str(configs / "factorise.yaml"), "--accelerator", "cpu")
    assert gpu["settings"]["trainer"]["accelerator"] == "gpu"
    (on_gpu,), (on_cpu,) = gpu["runs"], cpu["runs"]
    assert on_gpu["gd_loss"] == pytest.approx(on_cpu["gd_loss"], abs=1e-8)
    assert on_gpu["svd_loss"] == pytest.approx(on_cpu["svd_loss"], abs=1e-10)


def test_mlp_on_gpu_matches_cpu(tmp_path: Path, configs: Path) -> None:
    gpu = run(tmp_path / "gpu", "--config", str(configs / "mlp.yaml"), "--accelerator", "gpu")
    cpu = run(tmp_path / "cpu", "--config", str(configs / "mlp.yaml"), "--accelerator", "cpu")
    (on_gpu,), (on_cpu,) = gpu["runs"], cpu["runs"]
    for split in ("train", "val"):
        assert on_gpu[split]["acc_per_class"] == on_cpu[split]["acc_per_class"]
        assert on_gpu[split]["acc"] == on_cpu[split]["acc"]
        assert on_gpu[split]["loss"] == pytest.approx(on_cpu[split]["loss"], rel=1e-4)


def test_whole_lab_on_gpu_names_the_device(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    options = ["--seeds", "2", "--factorise_epochs", "200", "--mlp_epochs", "30", "--log_dir", str(tmp_path / "logs")]
    gpu = cli_run([*options, "--accelerator", "gpu", "--out", str(tmp_path / "gpu")])
    cpu = cli_run([*options, "--accelerator", "cpu", "--out", str(tmp_path / "cpu")])
    assert gpu["environment"]["device_type"] == "cuda"
    assert torch.cuda.get_device_name() in (tmp_path / "gpu" / "lab2.md").read_text()
    for a, b in zip(gpu["factorisation"]["runs"], cpu["factorisation"]["runs"], strict=True):
        assert a["gd_loss"] == pytest.approx(b["gd_loss"], abs=1e-8)
    assert gpu["mlp"]["summary"]["val"]["acc"] == pytest.approx(cpu["mlp"]["summary"]["val"]["acc"])
