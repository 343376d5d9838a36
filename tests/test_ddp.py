"""Two processes (Lightning's DDP on CPU) give the one-process numbers: each holds half the rows, and the summed
gradient is the lab's full-batch one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import plain_factors, subprocess_env, summed_squared_error

TIMEOUT = 75  # a quiet 2-core machine takes about 22 s, most of it starting the two processes
COMMAND = [
    "fit", "--config", "factorise", "--model.seeds", "[0,1]", "--trainer.max_steps", "200", "--trainer.devices", "2",
    "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
]  # fmt: skip


@pytest.mark.skipif(sys.platform != "linux", reason="DDP on CPU with gloo, as tested on Linux")
def test_ddp_on_two_cpu_processes_equals_one_process(tmp_path: Path) -> None:
    """``--trainer.devices 2 --trainer.strategy ddp`` ends at the one-device losses (to 1e-9), and the second process
    writes into the first one's run folder, not a folder of its own."""
    # A session of its own, so that a hang ends with both processes (the launcher starts the second one).
    process = subprocess.Popen(
        [sys.executable, "-m", "lab2_lightning", *COMMAND], cwd=tmp_path, env=subprocess_env(),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        output, _ = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"DDP did not finish in {TIMEOUT} s:\n{output[-3000:]}")
    assert process.returncode == 0, output[-3000:]
    assert sorted(p.name for p in (tmp_path / "lightning_logs").iterdir()) == ["version_0"]
    results = json.loads((tmp_path / "lightning_logs/version_0/results.json").read_text())
    for member, seed in enumerate((0, 1)):
        run = results["runs"][member]
        assert (run["seed"], run["steps"]) == (seed, 200)
        expected = summed_squared_error(*plain_factors(seed, steps=200))
        assert run["gd_loss"] == pytest.approx(expected, rel=0, abs=1e-9)
        assert len(results["curves"]["train"][member]) == 200
