"""Shared fixtures: the repository's configs, and a helper that runs the CLI into a temporary directory."""

from __future__ import annotations

import os

# What the entry points set before torch loads (lab2_lightning.cli), set here for tests that import modules directly.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")

# isort: off
import matplotlib

matplotlib.use("Agg")
# isort: on
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from lab2_lightning.cli import main

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

# The tests train on tiny matrices, where a second thread only spins (the CLI decides the same by size).
torch.set_num_threads(1)


@pytest.fixture
def configs() -> Path:
    return CONFIGS


@pytest.fixture
def run_cli(tmp_path: Path) -> Callable[..., dict[str, Any]]:
    """Run ``main([...])`` with logs under ``tmp_path`` and no progress bar; returns the results."""

    def run(*args: str) -> dict[str, Any]:
        return main([*args, "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false"])

    return run


@pytest.fixture
def cli_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Callable[..., str]:
    """Run the CLI expecting a user error: asserts exit status 2 and one ``error:`` line, the last on stderr (a
    progress bar may come before it), and returns that line."""

    def run(*args: str) -> str:
        with pytest.raises(SystemExit) as exit_info:
            main([*args, "--trainer.default_root_dir", str(tmp_path)])
        assert exit_info.value.code == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert not any("Traceback" in line for line in lines)
        assert [line for line in lines if line.startswith("error:")] == lines[-1:], lines  # one error line, last
        return lines[-1]

    return run


def read_results(tmp_path: Path, version: int = 0) -> dict[str, Any]:
    return json.loads((tmp_path / "lightning_logs" / f"version_{version}" / "results.json").read_text())


def cuda_or_skip() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
