"""Resuming a single run (``fit --ckpt_path``): ``last.ckpt`` holds the newest state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lab2_lightning.cli import run
from lab2_lightning.models.checkpoints import load_checkpoint


def step(checkpoint: Path) -> int:
    return int(load_checkpoint(checkpoint)["global_step"])


def fit_in(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[Any, str, str]:
    """``fit`` with logs under ``tmp_path``: what it returned (or its exit status), its stdout and its stderr."""
    try:
        returned = run(["fit", *args, "--trainer.default_root_dir", str(tmp_path), "--progress_bar.enabled", "false"])
    except SystemExit as stop:
        returned = stop.code
    out, err = capsys.readouterr()
    return returned, out, err


def test_last_checkpoint_holds_the_final_state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Checkpoints every 50 steps (mlp: every 5 epochs of 10), 60 steps: last.ckpt used to stay at step 50."""
    fit_in(tmp_path, capsys, "--config", "mlp", "--trainer.max_steps", "60")
    checkpoints = tmp_path / "lightning_logs" / "version_0" / "checkpoints"
    assert step(checkpoints / "last.ckpt") == 60 and step(checkpoints / "epoch=4-step=50.ckpt") == 50
