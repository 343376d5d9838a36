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
import functools
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lab2_lightning.cli import run
from lab2_lightning.lab.experiment import SUBCOMMANDS

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

# The tests train on tiny matrices, where a second thread only spins (the CLI decides the same by size).
torch.set_num_threads(1)


@functools.cache
def subprocess_timeout() -> float:
    """How long a test may wait for a process of the program: a generous multiple of how long this machine, as loaded
    as it is now, takes to start one (importing torch and Lightning, most of a tiny run's time).

    Measured once per session. A quiet 2-core machine starts one in 6-9 s and runs the tests' longest process (a
    wheel built and installed into a new venv) in about 60 s; a machine loaded by other jobs is slower at both, in
    proportion, so the limit grows with it instead of failing tests that are merely slow.
    """
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import lab2_lightning.commands"], check=True, timeout=3600)
    return 60 + 40 * (time.perf_counter() - started)


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


def read_run(folder: Path) -> EventAccumulator:
    """A TensorBoard run (a folder's event files) as TensorBoard reads it, every point kept."""
    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def cuda_or_skip() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
