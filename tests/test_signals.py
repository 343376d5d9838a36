"""Stopped runs never look successful: SIGINT and SIGTERM at any moment end with one line (what was kept, how to
continue) and the shell's status for the signal, and a stopped whole lab continues to the same report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from lab2_lightning.cli import run
from lab2_lightning.lab import report
from lab2_lightning.utils.folders import replace_folder
from lab2_lightning.utils.signals import Stopped, stop_on_signals
from tests.conftest import subprocess_timeout

TRAIN = str(Path(__file__).resolve().parents[1] / "scripts" / "train.py")
# The whole lab, small: 2 seeds; a long MLP training (checkpointed every 10 steps) to stop in the middle of.
LAB = [
    "lab",
    "--seeds",
    "2",
    "--factorise_epochs",
    "100",
    "--mlp_epochs",
    "3000",
    "--out",
    "reports",
    "--log_dir",
    "logs",
]
# What differs between two runs of the same lab: when and how long it ran, and whether it was continued.
VOLATILE = ("wall_time_s", "resumed")


def start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    subprocess_timeout()  # measured before the process starts, not while it runs
    return subprocess.Popen(
        [sys.executable, TRAIN, *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def stop_when(process: subprocess.Popen[str], ready: Path, signum: int) -> tuple[int, list[str]]:
    """Send ``signum`` once ``ready`` exists; the exit status and the lines of stderr (progress bars split off)."""
    deadline = time.monotonic() + subprocess_timeout()
    while not ready.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(process.pid, signum)
    _, err = process.communicate(timeout=subprocess_timeout())
    return process.returncode, [line for line in err.replace("\r", "\n").splitlines() if line.strip()]


def comparable(results: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in results.items() if key not in VOLATILE}


def test_stopped_while_starting(tmp_path: Path) -> None:
    """Stopped while torch and Lightning load (the first seconds of every run): nothing written, one line."""
    process = start(LAB, tmp_path)
    time.sleep(1.0)  # the interpreter is up and the handlers are in place; the imports take several seconds more
    status, lines = stop_when(process, tmp_path, signal.SIGINT)
    assert status == 130
    assert lines == ["error: stopped by SIGINT; nothing was written"]
    assert not (tmp_path / "logs").exists()


def test_whole_lab_stopped_while_training_continues_to_the_same_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mlp = tmp_path / "logs" / "lab" / "version_0" / "mlp"
    status, lines = stop_when(start(LAB, tmp_path), mlp / "checkpoints" / "last.ckpt", signal.SIGTERM)
    assert status == 143
    assert "Traceback" not in "\n".join(lines)
    assert lines[-1].startswith(
        "error: stopped by SIGTERM; kept logs/lab/version_0: factorise finished, mlp checkpointed at step "
    )
    assert lines[-1].endswith("; run the same command again to continue")
    assert not (tmp_path / "reports" / "lab2.md").exists() and not (mlp / "results.json").exists()
    factorise = (tmp_path / "logs" / "lab" / "version_0" / "factorise" / "results.json").read_bytes()

    again = subprocess.run(
        [sys.executable, TRAIN, *LAB], cwd=tmp_path, capture_output=True, text=True, timeout=subprocess_timeout()
    )
    assert again.returncode == 0, again.stderr
    assert "continuing the stopped lab in logs/lab/version_0" in again.stderr
    assert sorted(p.name for p in (tmp_path / "logs" / "lab").iterdir()) == ["version_0"]
    assert (tmp_path / "logs" / "lab" / "version_0" / "factorise" / "results.json").read_bytes() == factorise
    assert sorted(p.name for p in (mlp / "checkpoints").glob("last*")) == ["last.ckpt"]

    monkeypatch.chdir(tmp_path)  # the same relative --out and --log_dir, in-process: the reference run, never stopped
    reference = run([*LAB[:-4], "--out", "whole", "--log_dir", "whole_logs"])
    continued = json.loads((tmp_path / "reports" / "results.json").read_text())
    assert continued["resumed"] is True and reference["resumed"] is False
    for results in (continued, reference):
        results.pop("commands"), results["settings"].pop("tensorboard")
    assert comparable(continued) == comparable(reference)  # every number of the report, exactly


def test_whole_lab_stopped_by_ctrl_c_while_training(tmp_path: Path) -> None:
    ready = tmp_path / "logs" / "lab" / "version_0" / "factorise" / "checkpoints" / "last.ckpt"
    args = ["lab", "--seeds", "2", "--factorise_epochs", "20000", "--mlp_epochs", "5", "--out", "reports",
            "--log_dir", "logs"]  # fmt: skip
    status, lines = stop_when(start(args, tmp_path), ready, signal.SIGINT)
    assert status == 130
    assert "Traceback" not in "\n".join(lines) and "KeyboardInterrupt" not in "\n".join(lines)
    assert lines[-1].startswith("error: stopped by SIGINT; kept logs/lab/version_0: factorise checkpointed at step ")


def test_whole_lab_stopped_while_writing_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Stopped while drawing the report's figures: the trainings are kept, and the same command again only writes
    the report."""
    args = ["lab", "--seeds", "2", "--factorise_epochs", "20", "--mlp_epochs", "5", "--out", str(tmp_path / "reports"),
            "--log_dir", str(tmp_path / "logs")]  # fmt: skip
    drawn = report.png

    def stopped(*_: object) -> bytes:
        raise Stopped(signal.SIGTERM)

    monkeypatch.setattr(report, "png", stopped)
    handlers = [signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)]
    with pytest.raises(SystemExit) as exit_info:
        run(args)
    assert exit_info.value.code == 143
    # run() from Python (a notebook) gives the caller its handlers back: its Ctrl-C still works
    assert [signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)] == handlers
    lab_dir = tmp_path / "logs" / "lab" / "version_0"
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: stopped by SIGTERM; kept {lab_dir}: factorise finished, mlp finished; run the same command again to "
        "continue"
    )
    assert not (tmp_path / "reports" / "lab2.md").exists()

    monkeypatch.setattr(report, "png", drawn)
    results = run(args)
    assert results["resumed"] is True
    assert (tmp_path / "reports" / "lab2.md").is_file() and (lab_dir / "results.json").is_file()


# ---------------------------------------------------------------------------------- the whole lab's options


@pytest.mark.parametrize("option", ["--trainer.devices", "--trainer.strategy", "--trainer.num_nodes"])
def test_whole_lab_on_several_devices_says_how(option: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run(["lab", option, "2"])
    assert exit_info.value.code == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith(f"error: {option}: the whole lab runs each training on one device; to train on several")
    assert "fit --config factorise" in line and "--trainer.devices 2 --trainer.strategy ddp" in line


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--mlp_epochs", "-5", "--mlp_epochs must be at least 1, got -5"),
        ("--factorise_epochs", "0", "--factorise_epochs must be at least 1, got 0"),
        ("--threads", "0", "--threads must be a positive whole number or auto, got 0"),
    ],
)
def test_whole_lab_checks_every_option_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, message: str
) -> None:
    """A bad option of the second training is refused before the first one runs, and nothing is written."""
    with pytest.raises(SystemExit) as exit_info:
        run(["lab", option, value, "--out", str(tmp_path / "reports"), "--log_dir", str(tmp_path / "logs")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"error: {message}"
    assert not (tmp_path / "reports").exists() and not (tmp_path / "logs").exists()


def test_whole_labs_started_together_each_keep_their_own_folder(tmp_path: Path) -> None:
    args = ["lab", "--seeds", "2", "--factorise_epochs", "30", "--mlp_epochs", "5", "--out", "reports",
            "--log_dir", "logs"]  # fmt: skip
    subprocess_timeout()
    processes = [start(args, tmp_path) for _ in range(2)]
    for process in processes:
        _, err = process.communicate(timeout=subprocess_timeout())
        assert process.returncode == 0, err
    folders = sorted((tmp_path / "logs" / "lab").iterdir())
    assert [folder.name for folder in folders] == ["version_0", "version_1"]
    results = [json.loads((folder / "results.json").read_text()) for folder in folders]
    assert [r["settings"]["tensorboard"] for r in results] == ["logs/lab/version_0", "logs/lab/version_1"]
    for folder in folders:
        for training in ("factorise", "mlp"):
            assert (folder / training / "results.json").is_file()
            assert (folder / training / "checkpoints" / "last.ckpt").is_file()
    for r in results:
        r.pop("commands"), r["settings"].pop("tensorboard")
    assert comparable(results[0]) == comparable(results[1])
    assert (tmp_path / "reports" / "lab2.md").is_file()  # one of the two reports, whole; each is in its folder too


def test_a_signal_during_the_report_swap_lands_after_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM while the new report was being swapped in used to stop the swap's cleanup half-way: the new report in
    place, the previous one half-deleted beside it, and a line saying the lab had stopped before its report."""
    out = tmp_path / "reports"
    out.mkdir()
    (out / "lab2.md").write_text("previous")
    renames = []
    rename = os.rename

    def rename_then_signal(source: Any, target: Any) -> None:
        rename(source, target)
        renames.append(target)
        if len(renames) == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # between the swap's two renames

    monkeypatch.setattr(os, "rename", rename_then_signal)
    done = threading.Event()  # another thread, as a lab has (TensorBoard's writers): the system may deliver to it
    other = threading.Thread(target=done.wait)
    other.start()
    try:
        with pytest.raises(Stopped), stop_on_signals():
            replace_folder(out, lambda new: (new / "lab2.md").write_text("new"))
    finally:
        done.set()
        other.join()
    assert (out / "lab2.md").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reports"]  # no .reports.old, no staging folder


def test_a_second_signal_does_not_cut_the_exit_short(tmp_path: Path) -> None:
    """Ctrl-C, then SIGTERM while the first stop unwinds: one line for the first, and its status (the second used to
    kill the process as it exited: status -15 under a SIGINT line)."""
    ready = tmp_path / "logs" / "lab" / "version_0" / "factorise" / "checkpoints" / "last.ckpt"
    args = ["lab", "--seeds", "2", "--factorise_epochs", "20000", "--mlp_epochs", "5", "--out", "reports",
            "--log_dir", "logs"]  # fmt: skip
    process = start(args, tmp_path)
    deadline = time.monotonic() + subprocess_timeout()
    while not ready.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGINT)
    time.sleep(0.1)
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
    _, err = process.communicate(timeout=subprocess_timeout())
    assert process.returncode == 130
    assert err.strip().splitlines()[-1].startswith("error: stopped by SIGINT; kept logs/lab/version_0: ")
