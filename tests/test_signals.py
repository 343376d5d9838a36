"""Ctrl-C and SIGTERM in a real process: one ``error:`` line, status 130 or 143, no traceback, and a whole lab that
continues where it stopped with the uninterrupted lab's numbers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import Lab, numbers, plain_factors, subprocess_env, summed_squared_error

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

LAB = ["--seeds", "2", "--out", "reports"]


def start(args: list[str], cwd: Path) -> tuple[subprocess.Popen[bytes], Path, Path]:
    """``python -m lab2_lightning ARGS`` in the background, its output to files (a progress bar would fill a pipe)."""
    out, err = cwd / "stdout.txt", cwd / "stderr.txt"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "lab2_lightning", *args], cwd=cwd, env=subprocess_env(), stdout=stdout, stderr=stderr
        )
    return process, out, err


def last_line(text: str) -> str:
    lines = [line for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def wait_for(condition: object, timeout: float, process: subprocess.Popen[bytes]) -> None:
    """Poll ``condition()`` every millisecond until it holds; fail if the process ends or time runs out first."""
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert process.poll() is None, f"the process ended first with status {process.returncode}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def signal_when(
    process: subprocess.Popen[bytes], condition: object, signum: int, timeout: float, delay: float = 0.0
) -> tuple[int, float]:
    """Send ``signum`` once ``condition()`` holds (and ``delay`` seconds more): the exit status, and the seconds from
    this call to the signal. The process is killed whatever happens."""
    started = time.monotonic()
    try:
        wait_for(condition, timeout, process)
        time.sleep(delay)
        sent = time.monotonic() - started
        process.send_signal(signum)
        return process.wait(timeout=60), sent
    finally:
        process.kill()


def handles_sigterm(pid: int) -> bool:
    """Whether the process has installed a SIGTERM handler (Linux: the SigCgt mask in /proc/PID/status), which
    lab2's entry point does at once, before importing torch."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(caught & (1 << (signal.SIGTERM - 1)))


def test_sigterm_stops_a_lab_that_then_continues_with_the_same_numbers(tmp_path: Path, lab_run: Lab) -> None:
    """SIGTERM during the lab's factorisation (after its first checkpoint): status 143, stderr ending in one
    ``error: stopped by SIGTERM`` line, no traceback. The same command again continues that lab (same folder) and
    reports the uninterrupted lab's numbers."""
    process, _, err = start(LAB, tmp_path)
    checkpoint = tmp_path / "lightning_logs/lab/version_0/factorise/checkpoints/last.ckpt"
    assert signal_when(process, checkpoint.is_file, signal.SIGTERM, timeout=180)[0] == 143
    stderr = err.read_text()
    assert "Traceback" not in stderr
    assert last_line(stderr).startswith("error: stopped by SIGTERM"), last_line(stderr)
    assert not (tmp_path / "lightning_logs/lab/version_0/results.json").exists()

    again = subprocess.run(
        [sys.executable, "-m", "lab2_lightning", *LAB], cwd=tmp_path, env=subprocess_env(), capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]
    assert "continuing the stopped lab" in again.stderr
    assert sorted(p.name for p in (tmp_path / "lightning_logs/lab").iterdir()) == ["version_0"]
    results = json.loads((tmp_path / "reports/results.json").read_text())
    assert numbers(results) == numbers(lab_run.results)
    assert (tmp_path / "reports/lab2.md").is_file()


def test_sigint_as_soon_as_lab2_starts_ends_with_one_line(tmp_path: Path) -> None:
    """Ctrl-C as soon as lab2's entry point runs (within the first tens of milliseconds, while torch is still being
    imported): status 130, one ``error: stopped by SIGINT`` line, no traceback."""
    process, _, err = start(["fit", "--config", "mlp"], tmp_path)
    status, waited = signal_when(process, lambda: handles_sigterm(process.pid), signal.SIGINT, timeout=30)
    assert status == 130
    stderr = err.read_text()
    assert "Traceback" not in stderr
    assert last_line(stderr).startswith("error: stopped by SIGINT"), stderr[-2000:]
    assert not (tmp_path / "lightning_logs").exists()  # stopped before anything ran
    assert waited < 2.0  # the handler came before the seconds of importing torch


def test_a_fit_stopped_mid_training_resumes_from_its_last_epoch_to_the_plain_loops_numbers(tmp_path: Path) -> None:
    """A long fit writes last.ckpt after every Lightning epoch, not only at its end: SIGTERM after the first one exits
    143, and ``--ckpt_path last`` continues the same run folder to the plain loop's loss, bit for bit."""
    process, _, err = start(["fit", "--config", "factorise", "--trainer.max_steps", "1000000"], tmp_path)
    last = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    assert signal_when(process, last.is_file, signal.SIGTERM, timeout=120, delay=0.2)[0] == 143  # a later epoch
    assert last_line(err.read_text()).startswith("error: stopped by SIGTERM")
    stopped_at = int(torch.load(last, weights_only=True)["global_step"])
    assert stopped_at > 0 and stopped_at % 100 == 0  # the end of a Lightning epoch of 100 steps
    steps = str(stopped_at + 100)
    done = subprocess.run(
        [sys.executable, "-m", "lab2_lightning", "fit", "--config", "factorise", "--ckpt_path", "last",
         "--trainer.max_steps", steps, "--trainer.enable_progress_bar", "false"],
        cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "lightning_logs").iterdir()) == ["version_0"]
    results = json.loads((tmp_path / "lightning_logs" / "version_0" / "results.json").read_text())
    assert results["runs"][0]["gd_loss"] == summed_squared_error(*plain_factors(0, steps=stopped_at + 100))


def test_a_signal_during_the_libraries_import_is_raised_after_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Raised inside an import, the stop would leave a module half made (later tracebacks, or a lost signal): while
    the libraries import, the handler only records it; outside that window it stops at once."""
    from lab2_lightning import main

    monkeypatch.setattr(main, "_importing", [])
    main._stop(signal.SIGTERM, None)
    assert main._importing == [signal.SIGTERM]
    monkeypatch.setattr(main, "_importing", None)
    with pytest.raises(main.Stopped):
        main._stop(signal.SIGTERM, None)
