"""Shared fixtures: the repository's configs, and helpers that run the command line into a temporary directory."""

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

from lab2_lightning.cli import SUBCOMMANDS, run

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# A test's subprocess limit: `lab2 report` as a subprocess took 20 s on a loaded 2-core machine (12 s of CPU), 30x.
SUBPROCESS_TIMEOUT = 600

# The tests train on tiny matrices, where a second thread only spins (the CLI decides the same by size).
torch.set_num_threads(1)


@pytest.fixture
def configs() -> Path:
    return CONFIGS


@pytest.fixture
def run_cli(tmp_path: Path) -> Callable[..., dict[str, Any]]:
    """Run ``fit`` with the given options (``run(["fit", ...])``), logs under ``tmp_path`` and no progress bar;
    returns the results."""

    def fit(*args: str) -> dict[str, Any]:
        return run(["fit", *args, "--trainer.default_root_dir", str(tmp_path), "--progress_bar.enabled", "false"])

    return fit


@pytest.fixture
def cli_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Callable[..., str]:
    """Run a LightningCLI command (``fit`` unless the first argument names another) expecting a user error: asserts
    exit status 2 and one ``error:`` line, the last on stderr (a progress bar may come before it), and returns it."""

    def error(*args: str) -> str:
        command, rest = (args[0], list(args[1:])) if args and args[0] in SUBCOMMANDS else ("fit", list(args))
        with pytest.raises(SystemExit) as exit_info:
            run([command, *rest, "--trainer.default_root_dir", str(tmp_path)])
        assert exit_info.value.code == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert not any("Traceback" in line for line in lines)
        assert [line for line in lines if line.startswith("error:")] == lines[-1:], lines  # one error line, last
        return lines[-1]

    return error


def read_results(tmp_path: Path, version: int = 0) -> dict[str, Any]:
    return json.loads((tmp_path / "lightning_logs" / f"version_{version}" / "results.json").read_text())


def cuda_or_skip() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
