"""Resuming a single run (``fit --ckpt_path``) and single runs side by side: a finished run is left as it is, each
resume continues the newest state of its own run, ``last`` means this model's newest run, other data are refused,
two runs started together keep their own folders, and a run stopped before its first checkpoint recommends no
resume."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from lab2_lightning.cli import run
from lab2_lightning.data.table import packaged_iris
from lab2_lightning.models.checkpoints import load_checkpoint
from tests.conftest import subprocess_timeout

TRAIN = str(Path(__file__).resolve().parents[1] / "scripts" / "train.py")


def files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``, by relative path: what a command must leave as it was."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


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


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------- a finished run


@pytest.mark.parametrize(("config", "steps"), [("mlp", "20"), ("factorise", "100")])
def test_resuming_a_finished_run_changes_nothing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    run_cli: Callable[..., Any],
    cli_error: Callable[..., str],
    config: str,
    steps: str,
) -> None:
    """It used to rewrite results.json without the accuracies (MLP), or end in a traceback (factorisation). A
    finished state with no results.json of its own (here: outside its run folder) is refused."""
    run_cli("--config", config, "--trainer.max_steps", steps)
    capsys.readouterr()
    logs = tmp_path / "lightning_logs"
    before = files(logs)
    status, out, _ = fit_in(tmp_path, capsys, "--config", config, "--trainer.max_steps", steps, "--ckpt_path", "last")
    assert status == 0
    run_dir = logs / "version_0"
    assert out.splitlines() == [
        f"{run_dir} is already complete (step {steps} of trainer.max_steps {steps}): nothing resumed, nothing "
        f"changed; its results: {run_dir / 'results.json'} (raise trainer.max_steps to train on)"
    ]
    assert files(logs) == before

    copy = tmp_path / "copy.ckpt"
    copy.write_bytes((run_dir / "checkpoints" / "last.ckpt").read_bytes())
    line = cli_error("--config", config, "--trainer.max_steps", steps, "--ckpt_path", str(copy))
    assert line == (
        f"error: {copy}: nothing left to train (step {steps} of trainer.max_steps {steps}) and no results.json of this "
        "state to show; raise trainer.max_steps to train on, or run it again without --ckpt_path"
    )
    assert files(logs) == before


def test_a_run_finished_by_its_epochs_is_complete_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ("--config", "mlp", "--trainer.max_steps", "-1", "--trainer.max_epochs", "2")
    results, _, _ = fit_in(tmp_path, capsys, *args)
    assert results["runs"][0]["epochs"] == 20  # 2 epochs of 10 steps
    before = files(tmp_path / "lightning_logs")
    status, out, _ = fit_in(tmp_path, capsys, *args, "--ckpt_path", "last")
    assert status == 0 and "is already complete (epoch 2 of trainer.max_epochs 2)" in out
    assert out.rstrip().endswith("(raise trainer.max_epochs to train on)")
    assert files(tmp_path / "lightning_logs") == before


# ---------------------------------------------------------------------------------------------- resumed twice


def test_each_resume_continues_from_the_previous_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The first resume used to write last-v1.ckpt beside last.ckpt, and the second restarted from the stale one."""
    args = ("--config", "factorise", "--checkpoint.every_n_epochs", "1")
    last = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    fit_in(tmp_path, capsys, *args, "--trainer.max_steps", "200")
    for start, end in ((200, 300), (300, 400)):
        results, _, err = fit_in(tmp_path, capsys, *args, "--trainer.max_steps", str(end), "--ckpt_path", "last")
        assert results["runs"][0]["epochs"] == end
        assert step(last) == end
        assert sorted(p.name for p in last.parent.glob("last*")) == ["last.ckpt"]
        assert f"resuming {last.parents[1]} from step {start} (last.ckpt)" in err.splitlines()
    assert [p.name for p in (tmp_path / "lightning_logs").iterdir()] == ["version_0"]


def test_last_checkpoint_holds_the_final_state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Checkpoints every 50 steps (mlp: every 5 epochs of 10), 60 steps: last.ckpt used to stay at step 50."""
    fit_in(tmp_path, capsys, "--config", "mlp", "--trainer.max_steps", "60")
    checkpoints = tmp_path / "lightning_logs" / "version_0" / "checkpoints"
    assert step(checkpoints / "last.ckpt") == 60 and step(checkpoints / "epoch=4-step=50.ckpt") == 50


# ------------------------------------------------------------------------------------ a config with a ckpt_path


def test_a_saved_config_with_a_ckpt_path_never_overwrites_a_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A resumed run's config.yaml holds its ckpt_path: running that config resumes that same run, in its own folder,
    and says so; a checkpoint its run has gone past starts a new folder. It used to rewrite the finished run's
    results.json without its accuracies."""
    logs = tmp_path / "lightning_logs"
    first = logs / "version_0"
    fit_in(tmp_path, capsys, "--config", "mlp", "--trainer.max_steps", "20")
    fit_in(tmp_path, capsys, "--config", "mlp", "--trainer.max_steps", "40", "--ckpt_path", "last")
    fit_in(tmp_path, capsys, "--config", "mlp", "--trainer.max_steps", "20")  # another run: version_1
    saved = str(first / "config.yaml")
    assert "ckpt_path: " + str(first / "checkpoints" / "last.ckpt") in (first / "config.yaml").read_text()
    before = files(logs)

    status, out, _ = fit_in(tmp_path, capsys, "--config", saved)
    assert status == 0 and out.startswith(f"{first} is already complete (step 40 of trainer.max_steps 40)")
    assert files(logs) == before

    older = first / "checkpoints" / "step40.ckpt"  # kept aside: the run goes on past it
    older.write_bytes((first / "checkpoints" / "last.ckpt").read_bytes())
    second = files(logs / "version_1")
    results, _, err = fit_in(tmp_path, capsys, "--config", saved, "--trainer.max_steps", "60")
    assert results["runs"][0]["epochs"] == 60 and step(first / "checkpoints" / "last.ckpt") == 60
    assert f"resuming {first} from step 40 (last.ckpt)" in err.splitlines()
    assert sorted(p.name for p in logs.iterdir()) == ["version_0", "version_1"]

    kept = files(first)
    results, _, err = fit_in(
        tmp_path, capsys, "--config", saved, "--trainer.max_steps", "60", "--ckpt_path", str(older)
    )
    assert results["runs"][0]["epochs"] == 60
    assert (
        f"continuing {older} (step 40) in a new run folder {logs / 'version_2'}: its own run {first} has gone on to "
        "step 60" in err.splitlines()
    )
    assert step(logs / "version_2" / "checkpoints" / "last.ckpt") == 60
    assert files(first) == kept and files(logs / "version_1") == second


# ----------------------------------------------------------------------------- last: this model's, on its data


def test_ckpt_path_last_takes_the_newest_run_of_the_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """It used to take the newest last.ckpt of any model (here the MLP's), and refuse to resume it."""
    fit_in(tmp_path, capsys, "--config", "factorise", "--trainer.max_steps", "100")
    fit_in(tmp_path, capsys, "--config", "mlp", "--trainer.max_steps", "10")
    mlp = files(tmp_path / "lightning_logs" / "version_1")
    results, _, _ = fit_in(
        tmp_path, capsys, "--config", "factorise", "--trainer.max_steps", "200", "--ckpt_path", "last"
    )
    assert results["model"] == "LowRankFactorisation" and results["runs"][0]["epochs"] == 200
    assert step(tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt") == 200
    assert files(tmp_path / "lightning_logs" / "version_1") == mlp


def test_resuming_on_other_data_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cli_error: Callable[..., str]
) -> None:
    """Two files of the same shape: the checkpoint records its data's path and SHA-256, and a resume compares."""
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_bytes(packaged_iris().read_bytes())
    b.write_text(a.read_text().replace("5.1,3.5,1.4,0.2", "5.2,3.5,1.4,0.2", 1))
    fit_in(tmp_path, capsys, "--config", "mlp", "--data.path", str(a), "--trainer.max_steps", "10")
    last = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    logs = files(tmp_path / "lightning_logs")

    resume = ("--config", "mlp", "--trainer.max_steps", "20", "--ckpt_path", "last", "--progress_bar.enabled", "false")
    line = cli_error(*resume, "--data.path", str(b))
    assert line == (
        f"error: {last} was trained on {a.resolve()} (sha256 {sha256(a)[:12]}), but this run reads {b.resolve()} "
        f"(sha256 {sha256(b)[:12]}); resume with the data it was trained on (data.path)"
    )
    original = a.read_bytes()
    a.write_bytes(b.read_bytes())  # the same file, edited since
    line = cli_error(*resume, "--data.path", str(a))
    assert line == (
        f"error: {last}: its data file {a.resolve()} has changed since it was trained on (sha256 "
        f"{hashlib.sha256(original).hexdigest()[:12]} then, {sha256(a)[:12]} now); resume with the data it was "
        "trained on"
    )
    assert files(tmp_path / "lightning_logs") == logs
    assert load_checkpoint(last)["IrisDataModule"] == {
        "source": str(a.resolve()),
        "sha256": hashlib.sha256(original).hexdigest(),
    }

    a.write_bytes(original)
    results, _, _ = fit_in(tmp_path, capsys, *resume, "--data.path", str(a))
    assert results["runs"][0]["epochs"] == 20

    # A checkpoint of an earlier version, without the record: resumed, with a warning that nothing was checked.
    checkpoint = torch.load(last, weights_only=True)
    del checkpoint["IrisDataModule"]
    torch.save(checkpoint, last)
    results, _, err = fit_in(tmp_path, capsys, "--config", "mlp", "--trainer.max_steps", "30", "--ckpt_path", "last",
                             "--data.path", str(b))  # fmt: skip
    assert results["runs"][0]["epochs"] == 30
    warning = f"warning: {last} does not record its data (written by an earlier version); resuming on {b.resolve()}"
    assert f"{warning} unchecked" in err.splitlines()


# ------------------------------------------------------------------------------------ two runs, and a stop


def test_two_runs_started_together_keep_their_own_folders(tmp_path: Path) -> None:
    command = [sys.executable, TRAIN, "fit", "--config", "factorise", "--trainer.max_steps", "2",
               "--progress_bar.enabled", "false"]  # fmt: skip
    timeout = subprocess_timeout()
    processes = [
        subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=timeout) for process in processes]
    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
    logs = tmp_path / "lightning_logs"
    folders = sorted(p.name for p in logs.iterdir())
    assert folders == ["version_0", "version_1"]
    printed = sorted(out.splitlines()[-1] for out, _ in outputs)
    assert printed == [f"results: {logs / folder / 'results.json'}" for folder in folders]
    for folder in folders:
        assert {"config.yaml", "results.json", "checkpoints/last.ckpt"} <= files(logs / folder).keys()
        assert step(logs / folder / "checkpoints" / "last.ckpt") == 2


def test_stopped_before_the_first_checkpoint_recommends_no_resume(tmp_path: Path) -> None:
    """It used to recommend --ckpt_path last, which then failed: there was nothing to resume."""
    timeout = subprocess_timeout()
    process = subprocess.Popen(
        [sys.executable, TRAIN, "fit", "--config", "factorise", "--trainer.max_steps", "1000000",
         "--data.steps_per_epoch", "1000000", "--progress_bar.enabled", "false"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    run_dir = tmp_path / "lightning_logs" / "version_0"
    deadline = time.monotonic() + timeout
    while not (run_dir / "config.yaml").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)  # config.yaml: the fit has begun; its first checkpoint is a million steps away
    os.kill(process.pid, signal.SIGTERM)
    _, err = process.communicate(timeout=timeout)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert err.strip().splitlines()[-1] == (
        "error: stopped by SIGTERM; no checkpoint was written yet, so there is nothing to resume; run the same command "
        "again"
    )
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "results.json").exists()


def test_two_resumes_of_one_run_started_together(tmp_path: Path) -> None:
    """Both used to continue the same run folder at once, each writing its checkpoints and results.json there."""
    base = [sys.executable, TRAIN, "fit", "--config", "factorise", "--progress_bar.enabled", "false"]
    first = subprocess.run([*base, "--trainer.max_steps", "300"], cwd=tmp_path, capture_output=True, text=True,
                           timeout=subprocess_timeout())  # fmt: skip
    assert first.returncode == 0, first.stderr
    command = [*base, "--trainer.max_steps", "600", "--ckpt_path", "last"]
    processes = [
        subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=subprocess_timeout()) for process in processes]
    run_dir = tmp_path / "lightning_logs" / "version_0"
    resumed = [err for _, err in outputs if f"resuming {run_dir} from step 300" in err]
    assert len(resumed) == 1, outputs  # one continued the run; the other found it taken, or (if it came late) done
    other = next((process.returncode, out, err) for process, (out, err) in zip(processes, outputs, strict=True)
                 if f"resuming {run_dir}" not in err)  # fmt: skip
    assert other[0] == 2 or (other[0] == 0 and "is already complete" in other[1]), other
    if other[0] == 2:  # refused by the lock; rarely, reading last.ckpt while the first rewrote it: one line still
        assert other[2].strip().splitlines()[-1].startswith("error: "), other
        assert "Traceback" not in other[2], other
    assert step(run_dir / "checkpoints" / "last.ckpt") == 600
    assert sorted(p.name for p in (tmp_path / "lightning_logs").iterdir()) == ["version_0"]
