"""Reliability: divergence, interrupted and resumed runs, atomic outputs, determinism, and bad input."""

from __future__ import annotations

import json
import math
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

from lab2_lightning.models.checkpoints import load_checkpoint
from lab2_lightning.utils.atomic import atomic_write, write_json
from tests.conftest import read_results, subprocess_timeout

ROOT = Path(__file__).resolve().parents[1]
TRAIN = str(ROOT / "scripts" / "train.py")


def numbers(results: dict[str, Any]) -> dict[str, Any]:
    """The results without the settings (which name the run's own paths)."""
    return {k: v for k, v in results.items() if k != "settings"}


# ------------------------------------------------------------------------------------------------ divergence


def test_divergence_stops_with_one_line_and_no_results(
    tmp_path: Path, configs: Path, cli_error: Callable[..., str]
) -> None:
    line = cli_error("--config", str(configs / "factorise.yaml"), "--model.lr", "1.0")
    assert line.startswith("error: training diverged at step ")
    assert "with lr 1.0" in line and "lower model.lr" in line
    assert not list(tmp_path.rglob("results.json"))


def test_divergence_on_the_last_step(tmp_path: Path, configs: Path, cli_error: Callable[..., str]) -> None:
    # With lr 1.0 the loss is finite for 5 steps and the 5th step breaks the weights: no loss is checked after it.
    line = cli_error("--config", str(configs / "factorise.yaml"), "--model.lr", "1.0", "--trainer.max_steps", "5")
    assert line == "error: training diverged: seed_0's loss is inf after step 5; lower model.lr"
    assert not list(tmp_path.rglob("results.json"))


def test_large_values_diverge_at_the_default_lr(tmp_path: Path, configs: Path, cli_error: Callable[..., str]) -> None:
    rows = [f"{1e6 * (i % 7)},{2e6 * (i % 3)},{3e6 * (i % 5)}" for i in range(40)]
    path = tmp_path / "big.csv"
    path.write_text("\n".join(rows) + "\n")
    line = cli_error("--config", str(configs / "factorise.yaml"), "--data.path", str(path))
    assert "training diverged at step" in line and "with lr 0.01" in line
    assert not list(tmp_path.rglob("results.json"))


# ------------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--model.lr", "0"], "model.lr must be a positive number, got 0"),
        (["--model.lr", "-0.5"], "model.lr must be a positive number, got -0.5"),
        (["--trainer.max_steps", "0"], "trainer.max_steps (the lab's epochs) must be at least 1, got 0"),
        (["--trainer.max_epochs", "0"], "trainer.max_epochs must be at least 1"),
        (["--data.steps_per_epoch", "0"], "data.steps_per_epoch must be at least 1, got 0"),
        (["--data.steps_per_batch", "0"], "data.steps_per_batch must be at least 1, got 0"),
        (["--checkpoint.every_n_train_steps", "15"], "every_n_train_steps 15 is not a multiple of the 10 steps of"),
        (["--trainer.val_check_interval", "20"], "trainer.val_check_interval 20 places validation between Lightning's"),
        (["--trainer.val_check_interval", "0.5"], "trainer.val_check_interval 0.5 places validation between"),
        (["--trainer.val_check_interval", "1"], "trainer.val_check_interval 1 places validation between"),
        (["--data.steps_per_batch", "0", "--checkpoint.every_n_train_steps", "10"], "data.steps_per_batch must be at"),
        (["--model.init_args.seeds", "[]"], "model.seeds must name at least one seed"),
        (["--model.init_args.seeds", "[0,1]", "--model.init_args.rank", "[1,2,3]"], "must pair one to one"),
        (["--model.init_args.rank", "[2,5]"], "model.rank must be between 1 and min(rows, features) = 4"),
    ],
)
def test_bad_settings(configs: Path, cli_error: Callable[..., str], flags: list[str], message: str) -> None:
    assert message in cli_error("--config", str(configs / "factorise.yaml"), *flags)


def test_a_checkpoint_interval_on_the_batch_grid(tmp_path: Path, configs: Path, run_cli: Callable[..., Any]) -> None:
    """Every 20 steps with batches of 10 (inside one epoch of 100 steps): a checkpoint at each multiple of 20."""
    run_cli("--config", str(configs / "factorise.yaml"), "--trainer.max_steps", "100", "--checkpoint.every_n_epochs",
            "0", "--checkpoint.every_n_train_steps", "20", "--checkpoint.save_top_k", "-1")  # fmt: skip
    folder = tmp_path / "lightning_logs" / "version_0" / "checkpoints"
    saved = sorted(int(path.stem.split("step=")[1]) for path in folder.glob("epoch=*.ckpt"))
    assert saved == [20, 40, 60, 80, 100]


def test_unknown_config_key(tmp_path: Path, configs: Path, cli_error: Callable[..., str]) -> None:
    config = tmp_path / "typo.yaml"
    config.write_text((configs / "factorise.yaml").read_text() + "  learning_rate: 0.1\n")
    line = cli_error("--config", str(config))
    assert line == "error: Subcommand 'fit' does not accept option 'checkpoint.learning_rate' (see --help)"
    line = cli_error("--config", str(configs / "factorise.yaml"), "--model.init_args.learning_rate", "0.1")
    assert "Option 'learning_rate' is not accepted (see --help)" in line
    assert "unrecognized arguments: --trainer.bogus 1" in cli_error("--trainer.bogus", "1")
    assert "Expected a <class 'int'>. Got value: two" in cli_error(
        "--config", str(configs / "factorise.yaml"), "--model.init_args.rank", "two"
    )


def test_resume_from_bad_checkpoints(
    tmp_path: Path, configs: Path, run_cli: Callable[..., Any], cli_error: Callable[..., str]
) -> None:
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    assert "not a readable checkpoint" in cli_error(
        "--config", str(configs / "factorise.yaml"), "--ckpt_path", str(corrupt)
    )
    run_cli("--config", str(configs / "factorise.yaml"), "--trainer.max_steps", "100")
    factorisation = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(factorisation.read_bytes()[:300])
    assert "not a readable checkpoint" in cli_error(
        "--config", str(configs / "factorise.yaml"), "--ckpt_path", str(truncated)
    )
    line = cli_error("--config", str(configs / "mlp.yaml"), "--ckpt_path", str(factorisation))
    assert "this is a LowRankFactorisation checkpoint; it cannot resume a LabMLP" in line
    line = cli_error(
        "--config", str(configs / "factorise.yaml"), "--model.rank", "3", "--ckpt_path", str(factorisation)
    )
    assert "model.rank is 2 in the checkpoint but 3 here" in line


@pytest.mark.parametrize(
    ("name", "value", "kinds", "count"), [("W1", math.nan, "NaN", "1 of 48"), ("b2", math.inf, "inf", "1 of 1")]
)
def test_non_finite_weights_are_a_corrupt_checkpoint(
    tmp_path: Path,
    configs: Path,
    run_cli: Callable[..., Any],
    cli_error: Callable[..., str],
    name: str,
    value: float,
    kinds: str,
    count: str,
) -> None:
    """Not "training diverged ... lower model.lr" at the first resumed step, nor NaN metrics or predictions."""
    run_cli("--config", str(configs / "mlp.yaml"), "--trainer.max_steps", "20")
    checkpoint = torch.load(tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)
    checkpoint["state_dict"][name].view(-1)[0] = value
    broken = tmp_path / "broken.ckpt"
    torch.save(checkpoint, broken)
    new = tmp_path / "new.csv"
    new.write_text("5.1,3.5,1.4,0.2\n")
    expected = (
        f"error: {broken}: corrupt checkpoint: {name} holds {kinds} values ({count}); the file is damaged or its run "
        "had diverged: use an earlier checkpoint"
    )
    before = sorted(tmp_path.rglob("*"))
    assert cli_error("--config", str(configs / "mlp.yaml"), "--ckpt_path", str(broken)) == expected
    assert cli_error("validate", "--config", "mlp", "--ckpt_path", str(broken)) == expected
    assert cli_error("test", "--config", "mlp", "--ckpt_path", str(broken)) == expected
    assert cli_error("predict", "--ckpt_path", str(broken), "--data.path", str(new)) == expected
    assert sorted(tmp_path.rglob("*")) == before  # no new run, no predictions file


@pytest.mark.parametrize(("config", "steps"), [("factorise.yaml", "100,000"), ("mlp.yaml", "10,000")])
def test_max_steps_minus_one_without_another_limit(
    tmp_path: Path, configs: Path, cli_error: Callable[..., str], config: str, steps: str
) -> None:
    """-1 is Lightning's "no step limit"; with no max_epochs it then runs 1000 epochs, saying so in a warning."""
    line = cli_error("--config", str(configs / config), "--trainer.max_steps", "-1")
    per_epoch = "100" if config == "factorise.yaml" else "10"
    assert line == (
        "error: trainer.max_steps -1 means no step limit, and with no trainer.max_epochs Lightning would stop after "
        f"its default 1000 epochs: {steps} steps here (data.steps_per_epoch {per_epoch}); give the lab's epochs as "
        "trainer.max_steps N, or set trainer.max_epochs or trainer.max_time"
    )
    assert not (tmp_path / "lightning_logs").exists()


def test_max_steps_minus_one_with_max_epochs(tmp_path: Path, configs: Path, run_cli: Callable[..., Any]) -> None:
    run_cli("--config", str(configs / "mlp.yaml"), "--trainer.max_steps", "-1", "--trainer.max_epochs", "2")
    checkpoint = load_checkpoint(tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] == 20  # 2 epochs of data.steps_per_epoch 10


def test_resume_last_without_checkpoint(configs: Path, cli_error: Callable[..., str]) -> None:
    assert "--ckpt_path last: no " in cli_error("--config", str(configs / "factorise.yaml"), "--ckpt_path", "last")


def test_checkpoints_load_with_weights_only(tmp_path: Path, configs: Path, run_cli: Callable[..., Any]) -> None:
    run_cli("--config", str(configs / "mlp.yaml"), "--trainer.max_steps", "20")
    checkpoint = load_checkpoint(tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] == 20 and "W1" in checkpoint["state_dict"]


# --------------------------------------------------------------------------------------------------- atomic


def test_atomic_write_keeps_the_previous_file_on_failure(tmp_path: Path) -> None:
    path = write_json(tmp_path / "results.json", {"gd_loss": 1.0})
    before = path.read_bytes()

    def half_then_fail(tmp: Path) -> None:
        tmp.write_text('{"gd_loss": 2')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, half_then_fail)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temporary file left behind
    with pytest.raises(ValueError):
        write_json(path, {"gd_loss": float("nan")})  # never a NaN in a results file
    assert path.read_bytes() == before


def test_report_failure_leaves_the_previous_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lab2_lightning.cli import run as train_main
    from lab2_lightning.lab import report

    train_main(["--seeds", "1", "--factorise_epochs", "20", "--mlp_epochs", "5", "--out", str(tmp_path / "r"),
                "--log_dir", str(tmp_path / "logs")])  # fmt: skip
    before = {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()}
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    results["wall_time_s"] = 123.0
    calls = {"n": 0}
    real_savefig = report.Figure.savefig

    def failing_savefig(figure: Any, *args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("injected failure while writing a figure")
        real_savefig(figure, *args, **kwargs)

    monkeypatch.setattr(report.Figure, "savefig", failing_savefig)
    with pytest.raises(OSError, match="injected"):
        report.write_report(results, tmp_path / "r")
    after = {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()}
    assert after.keys() == before.keys()
    assert after["results.json"] == before["results.json"] and after["lab2.md"] == before["lab2.md"]


# ----------------------------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("config", ["factorise.yaml", "mlp.yaml"])
def test_same_seed_same_numbers_other_seed_other_numbers(
    tmp_path: Path, configs: Path, run_cli: Callable[..., Any], config: str
) -> None:
    for seed in ("3", "3", "4"):
        run_cli("--config", str(configs / config), "--trainer.max_steps", "200", "--seed_everything", seed)
    first, second, other = (numbers(read_results(tmp_path, v)) for v in range(3))
    assert json.dumps(first) == json.dumps(second)
    assert first != other


# ------------------------------------------------------------------------------------- interrupted and resumed


def run_train(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, TRAIN, "fit", *args], cwd=cwd, capture_output=True, text=True, timeout=subprocess_timeout()
    )


@pytest.mark.parametrize("kill", [signal.SIGTERM, signal.SIGKILL])
def test_killed_run_resumes_to_the_same_numbers(tmp_path: Path, configs: Path, kill: signal.Signals) -> None:
    args = ["--config", str(configs / "factorise.yaml"), "--trainer.max_steps", "3000",
            "--checkpoint.every_n_epochs", "1", "--progress_bar.enabled", "false"]  # fmt: skip
    reference = run_train([*args, "--trainer.default_root_dir", "reference"], tmp_path)
    assert reference.returncode == 0, reference.stderr

    process = subprocess.Popen(
        [sys.executable, TRAIN, "fit", *args, "--trainer.default_root_dir", "killed"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    last = tmp_path / "killed" / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + subprocess_timeout()
    while not last.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(process.pid, kill)
    _, err = process.communicate(timeout=subprocess_timeout())
    assert process.returncode != 0, "the run finished before it could be interrupted"
    if kill == signal.SIGTERM:
        assert process.returncode == 128 + signal.SIGTERM
        step = load_checkpoint(last)["global_step"]
        assert err.strip().splitlines()[-1] == (
            f"error: stopped by SIGTERM; kept {last.relative_to(tmp_path)} (step {step}); continue with the same "
            f"command and --ckpt_path {last.relative_to(tmp_path)}"
        )
        assert "Traceback" not in err
    assert not (last.parents[1] / "results.json").exists()
    assert load_checkpoint(last)["global_step"] < 3000

    resumed = run_train([*args, "--trainer.default_root_dir", "killed", "--ckpt_path", "last"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    expected = load_checkpoint(tmp_path / "reference" / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt")
    got = load_checkpoint(last)
    assert got["global_step"] == expected["global_step"] == 3000
    for name in ("U", "V"):
        assert torch.equal(got["state_dict"][name], expected["state_dict"][name])  # bitwise
    got_results = json.loads((last.parents[1] / "results.json").read_text())
    expected_results = json.loads(
        (tmp_path / "reference" / "lightning_logs" / "version_0" / "results.json").read_text()
    )
    assert numbers(got_results) == numbers(expected_results)


# ------------------------------------------------------------------------------------------------------- DDP


def ddp_pair(tmp_path: Path, configs: Path, config: str) -> tuple[Path, Path]:
    args = ["--config", str(configs / config), "--trainer.max_steps", "200", "--trainer.accelerator", "cpu",
            "--progress_bar.enabled", "false"]  # fmt: skip
    one = run_train([*args, "--trainer.default_root_dir", "one"], tmp_path)
    two = run_train(
        [*args, "--trainer.default_root_dir", "two", "--trainer.devices", "2", "--trainer.strategy", "ddp"], tmp_path
    )
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    return (tmp_path / "one" / "lightning_logs" / "version_0", tmp_path / "two" / "lightning_logs" / "version_0")


def test_ddp_factorisation_matches_one_device(tmp_path: Path, configs: Path) -> None:
    one, two = ddp_pair(tmp_path, configs, "factorise.yaml")
    assert str(json.loads((two / "results.json").read_text())["settings"]["trainer"]["devices"]) == "2"
    a, b = (load_checkpoint(run / "checkpoints" / "last.ckpt")["state_dict"] for run in (one, two))
    for name in ("U", "V"):
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=1e-9)
    r1, r2 = (json.loads((run / "results.json").read_text()) for run in (one, two))
    assert r2["runs"][0]["gd_loss"] == pytest.approx(r1["runs"][0]["gd_loss"], abs=1e-9)
    assert len(list(two.parent.iterdir())) == 1  # one run directory: only rank 0 writes


def test_ddp_mlp_matches_one_device(tmp_path: Path, configs: Path) -> None:
    one, two = ddp_pair(tmp_path, configs, "mlp.yaml")
    a, b = (load_checkpoint(run / "checkpoints" / "last.ckpt")["state_dict"] for run in (one, two))
    for name in ("W1", "W2", "b1", "b2"):
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=1e-5)
    r1, r2 = (json.loads((run / "results.json").read_text()) for run in (one, two))
    (run1,), (run2,) = r1["runs"], r2["runs"]
    for split in ("train", "val"):
        assert run2[split]["acc_per_class"] == run1[split]["acc_per_class"]
        assert run2[split]["class_counts"] == run1[split]["class_counts"]
        assert run2[split]["loss"] == pytest.approx(run1[split]["loss"], rel=1e-5)


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--trainer.strategy", "ddp_spawn"], "ddp_spawn"),
        (["--trainer.strategy", "ddp_fork"], "ddp_fork"),
        (["--trainer.strategy", "ddp_notebook"], "ddp_notebook"),
        (["--trainer.strategy", "ddp_spawn_find_unused_parameters_true"], "ddp_spawn_find_unused_parameters_true"),
        (
            ["--trainer.strategy", "lightning.pytorch.strategies.DDPStrategy", "--trainer.strategy.start_method",
             "spawn"],
            "DDPStrategy with start_method spawn",
        ),
    ],
    ids=["ddp_spawn", "ddp_fork", "ddp_notebook", "find_unused", "class"],
)  # fmt: skip
@pytest.mark.parametrize("command", ["fit", "validate"])
def test_ddp_started_from_this_process_is_refused(
    tmp_path: Path, configs: Path, cli_error: Callable[..., str], flags: list[str], named: str, command: str
) -> None:
    """These strategies train in child processes that hand back only weights and metrics: fit exited 0 with an
    empty results.json in a run folder of its own (the training's being another)."""
    line = cli_error(command, "--config", str(configs / "mlp.yaml"), "--trainer.devices", "2", *flags)
    assert line == (
        f"error: --trainer.strategy {named} trains in processes started from this one, which hand back no results "
        "(results.json would be empty, in a run folder of its own); use --trainer.strategy ddp, the same training "
        "run as separate processes"
    )
    assert not (tmp_path / "lightning_logs").exists()
