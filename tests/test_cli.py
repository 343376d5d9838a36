"""The command line: LightningCLI's subcommands beside ``lab`` and ``report``, dispatch on the first argument, no
abbreviated options, one-line errors, packaged configs by name, the console script's exit status, ``fit --ckpt_path
last``, what a single run prints, and its TensorBoard output."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab2_lightning.cli import run
from lab2_lightning.commands import COMMANDS, headline, lab_parser, split_command
from tests.conftest import read_results, read_run, subprocess_timeout

ROOT = Path(__file__).resolve().parents[1]
TRAIN = str(ROOT / "scripts" / "train.py")


def event_tags(run_dir: Path) -> dict[str, list[str]]:
    return read_run(run_dir).Tags()


def run_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run ``args`` expecting a user error: exit status 2, one line on stderr, no traceback; returns the line."""
    with pytest.raises(SystemExit) as exit_info:
        run(list(args))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def run_script(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, TRAIN, *args], cwd=cwd, capture_output=True, text=True, timeout=subprocess_timeout()
    )


# ----------------------------------------------------------------------------------------------- one run


def test_factorise_run_writes_results_and_tensorboard(
    tmp_path: Path, configs: Path, run_cli: Callable[..., dict[str, Any]]
) -> None:
    returned = run_cli("--config", str(configs / "factorise.yaml"), "--trainer.max_steps", "300")
    results = read_results(tmp_path)
    assert results == returned and results["model"] == "LowRankFactorisation"
    (run,) = results["runs"]
    assert run["rank"] == 2 and run["epochs"] == 300 and run["lr"] == 0.01 and run["seed"] == 0
    assert run["svd_loss"] == pytest.approx(15.2288, abs=5e-5)
    assert run["relative_gap"] == pytest.approx((run["gd_loss"] - run["svd_loss"]) / run["svd_loss"])
    assert len(run["principal_angles_deg"]) == 2 and run["map_residual"] >= 0
    assert results["settings"]["trainer"]["precision"] == "64-true"

    run_dir = tmp_path / "lightning_logs" / "version_0"
    tags = event_tags(run_dir)
    for tag in ("train/loss", "final/gd_loss", "final/svd_loss", "final/relative_gap", "final/map_residual"):
        assert tag in tags["scalars"]
    assert "pca_vs_gd" in tags["images"]
    assert (run_dir / "checkpoints" / "last.ckpt").exists()


def test_repeated_runs_get_new_versions(tmp_path: Path, configs: Path, run_cli: Callable[..., Any]) -> None:
    for _ in range(2):
        run_cli("--config", str(configs / "factorise.yaml"), "--trainer.max_steps", "2")
    assert read_results(tmp_path, 1)["runs"][0]["epochs"] == 2
    # A fixed version reuses the directory and its config.yaml without crashing.
    for _ in range(2):
        run_cli(
            "--config", str(configs / "factorise.yaml"), "--trainer.max_steps", "2",
            "--trainer.logger", "TensorBoardLogger", "--trainer.logger.save_dir", str(tmp_path),
            "--trainer.logger.version", "fixed",
        )  # fmt: skip
    assert (tmp_path / "lightning_logs" / "fixed" / "config.yaml").exists()


def test_a_single_run_prints_its_headline_and_no_banners(tmp_path: Path, configs: Path) -> None:
    """As a user sees it, in a process of its own: the headline numbers and the results' path on stdout; no
    parameter table, no advertising, no progress bar when it is turned off."""
    done = run_script(
        "fit", "--config", str(configs / "factorise.yaml"), "--trainer.max_steps", "300",
        "--progress_bar.enabled", "false", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (run,) = read_results(tmp_path)["runs"]
    gap = 100 * run["relative_gap"]
    assert done.stdout.splitlines() == [
        f"seed 0, rank 2: GD loss {run['gd_loss']:.4f}, SVD optimum 15.2288 (gap {gap:+.4f}%)",
        f"results: {tmp_path / 'lightning_logs' / 'version_0' / 'results.json'}",
    ]
    printed = done.stdout + done.stderr
    assert "Trainable params" not in printed and "💡" not in printed and "Tip:" not in printed
    assert "step/s" not in printed and "LowRankFactorisation:" not in printed  # no bar


def test_headline_at_full_rank(tmp_path: Path, configs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """At rank 4 the optimum of the 150 x 4 matrix is 0 and results.json has no relative gap (null): the headline
    took 100 * None and ended in a TypeError traceback, after results.json was written."""
    results = run(["fit", "--config", str(configs / "factorise.yaml"), "--model.init_args.rank", "4",
                   "--trainer.max_steps", "10", "--trainer.default_root_dir", str(tmp_path)])  # fmt: skip
    (run_results,) = results["runs"]
    assert run_results["svd_loss"] == 0 and run_results["relative_gap"] is None
    assert capsys.readouterr().out.splitlines()[0] == (
        f"seed 0, rank 4: GD loss {run_results['gd_loss']:.4f}, SVD optimum 0.0000 (exact at this rank: no "
        "relative gap)"
    )


def test_mlp_headline_per_class(tmp_path: Path, configs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = run(["fit", "--config", "mlp", "--trainer.max_steps", "10", "--trainer.default_root_dir", str(tmp_path)])
    out = capsys.readouterr().out.splitlines()
    (results,) = results["runs"]
    val = results["val"]
    per_class = ", ".join(f"{name} {acc:.3f}" for name, acc in val["acc_per_class"].items())
    assert out[0] == (
        f"seed 0: training accuracy {results['train']['acc']:.3f}, validation accuracy {val['acc']:.3f} ({per_class})"
    )
    assert per_class.startswith("Iris-setosa ") and out[1].startswith("results: ")


def test_headline_of_several_members() -> None:
    """The results of a model that holds several seeds: a line each, summarised beyond ten lines."""
    run = {"rank": 2, "gd_loss": 15.2291, "svd_loss": 15.22881, "relative_gap": 2e-5}
    runs = [{"seed": seed, **run, "gd_loss": 15.229 + seed / 1e4} for seed in range(12)]
    lines = headline({"model": "LowRankFactorisation", "runs": runs})
    assert len(lines) == 10
    assert lines[0] == "seed 0, rank 2: GD loss 15.2290, SVD optimum 15.2288 (gap +0.0020%)"
    assert lines[-1] == "3 more runs (seeds 9-11): GD loss 15.2299 to 15.2301"
    split = {"acc": 0.86, "acc_per_class": {"a": 1.0, "b": None}}
    mlp = headline({"model": "LabMLP", "runs": [{"seed": 4, "train": {**split, "acc": 0.9}, "val": split}]})
    assert mlp == ["seed 4: training accuracy 0.900, validation accuracy 0.860 (a 1.000, b n/a)"]


def test_print_config_round_trip(
    tmp_path: Path, configs: Path, capsys: pytest.CaptureFixture[str], run_cli: Callable[..., Any]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run(["fit", "--config", str(configs / "factorise.yaml"), "--model.rank", "3", "--print_config"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    config = yaml.safe_load(printed)
    assert config["model"]["init_args"]["rank"] == 3 and config["trainer"]["precision"] == "64-true"
    assert "subcommand" not in config and config["progress_bar"]["enabled"] is True
    saved = tmp_path / "printed.yaml"
    saved.write_text(printed)
    results = run_cli("--config", str(saved), "--trainer.max_steps", "5")
    assert results["runs"][0]["rank"] == 3 and results["runs"][0]["epochs"] == 5


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--help"], ["--seeds", "how many seeds", "fit --config factorise", "report"]),
        (["lab", "--help"], ["--seeds", "--accelerator", "--factorise_epochs"]),
        (["report", "--help"], ["results.json", "--out"]),
        (
            ["fit", "--help"],
            ["--accelerator", "Shorthand for --trainer.accelerator", "--ckpt_path", "--progress_bar.enabled",
             "--data.preprocessing", "variance, not standard deviation", "packaged config: factorise, large, mlp"],
        ),
        (["validate", "--help"], ["--ckpt_path", "--accelerator"]),
        (["test", "--help"], ["--ckpt_path", "--accelerator"]),
        (["predict", "--help"], ["--ckpt_path", "--prediction.output", "--accelerator"]),
    ],
)  # fmt: skip
def test_help_of_each_command(capsys: pytest.CaptureFixture[str], args: list[str], expected: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run(args)
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for phrase in expected:
        assert phrase in text, phrase
    if args[0] != "predict":
        assert "--prediction.output" not in text


@pytest.mark.parametrize("flags", [["--accelerator", "cpu"], ["--trainer.accelerator", "cpu"]])
def test_accelerator_shorthand_in_fit(configs: Path, run_cli: Callable[..., Any], flags: list[str]) -> None:
    results = run_cli("--config", str(configs / "factorise.yaml"), "--trainer.max_steps", "1", *flags)
    assert results["settings"]["trainer"]["accelerator"] == "cpu"


def test_accelerator_shorthand_in_lab() -> None:
    assert lab_parser().parse_args(["--accelerator", "cpu"]).accelerator == "cpu"
    assert lab_parser().parse_args([]).accelerator == "auto"


def test_model_chosen_by_short_name(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    results = run_cli(
        "--model", "LowRankFactorisation", "--model.rank", "1", "--trainer.max_steps", "3",
        "--trainer.precision", "64-true",
    )  # fmt: skip
    assert results["model"] == "LowRankFactorisation" and results["runs"][0]["rank"] == 1


# ------------------------------------------------------------------------------------ configs by name


def test_packaged_config_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Callable[..., Any]) -> None:
    monkeypatch.chdir(tmp_path)  # no configs/ here
    assert run_cli("--config", "factorise", "--trainer.max_steps", "2")["runs"][0]["rank"] == 2
    assert run_cli("--config", "factorise.yaml", "--trainer.max_steps", "2")["runs"][0]["rank"] == 2
    # A file of that name in the working directory is a path, and wins.
    (tmp_path / "factorise.yaml").write_text(
        "model:\n  class_path: lab2_lightning.LowRankFactorisation\n  init_args:\n    rank: 1\n"
    )
    assert run_cli("--config", "factorise.yaml", "--trainer.max_steps", "2")["runs"][0]["rank"] == 1


def test_unknown_config_name(cli_error: Callable[..., str]) -> None:
    line = cli_error("--config", "factorize")
    packaged = "factorise, large, mlp, mlp_mean"
    assert line == f"error: factorize: no such config file, nor a packaged config (those are: {packaged})"
    assert "File does not exist" in cli_error("--config", "no/such/dir.yaml")


# ----------------------------------------------------------------------------- dispatch and abbreviations


def test_dispatch_on_the_first_argument() -> None:
    assert split_command([]) == ("lab", [])
    assert split_command(["--seeds", "3", "--accelerator", "gpu"]) == ("lab", ["--seeds", "3", "--accelerator", "gpu"])
    for command in COMMANDS:
        assert split_command([command, "--x"]) == (command, ["--x"])


def test_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    line = run_error(capsys, "fitt", "--config", "mlp")
    assert line == "error: 'fitt' is not a command: use one of fit, validate, test, predict, lab, report (none: lab)"


def test_experiment_option_without_a_command_names_fit(capsys: pytest.CaptureFixture[str]) -> None:
    line = run_error(capsys, "--config", "configs/mlp.yaml", "--trainer.max_steps", "3")
    assert line.startswith("error: --config is not an option of the whole lab; for one experiment run: ")
    assert line.endswith(" fit --config configs/mlp.yaml --trainer.max_steps 3")


def test_no_option_is_abbreviated(tmp_path: Path, capsys: pytest.CaptureFixture[str], configs: Path) -> None:
    """``--seed 3`` used to run the whole lab with ``--seeds 3`` and overwrite the 10-seed report."""
    line = run_error(capsys, "--seed", "3", "--out", str(tmp_path / "reports"))
    assert line == "error: --seed is not an option of the whole lab (none is abbreviated); did you mean --seeds?"
    assert not (tmp_path / "reports").exists()
    assert "did you mean --seeds?" in run_error(capsys, "lab", "--seed=3")
    assert "did you mean --out?" in run_error(capsys, "report", "results.json", "--ou", "x")
    factorise = str(configs / "factorise.yaml")
    for option, meant in (("--trainer.max_step", "--trainer.max_steps"), ("--seed", "--seed_everything")):
        line = run_error(capsys, "fit", "--config", factorise, option, "3")
        assert line == f"error: {option} is not an option of fit (none is abbreviated); did you mean {meant}?"
    line = run_error(capsys, "fit", "--config", factorise, "--model.ran", "3")
    assert line == "error: Parser key \"model\": Option 'ran' is not accepted (see --help)"
    assert run_error(capsys, "fit", "--bogus", "3") == "error: unrecognized arguments: --bogus 3 (see --help)"


def test_lab_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_error(capsys, "--seeds", "two") == (
        "error: Parser key \"seeds\": Expected a <class 'int'>. Got value: two (see --help)"
    )
    assert run_error(capsys, "report", "no-such-results.json") == "error: no-such-results.json: no such file"


# ---------------------------------------------------------------------------------------- one-line errors


def test_parse_errors_are_one_line(configs: Path, cli_error: Callable[..., str]) -> None:
    factorise = str(configs / "factorise.yaml")
    assert cli_error("--config", factorise, "--trainer.max_steps", "two") == (
        "error: Parser key \"trainer.max_steps\": Expected a <class 'int'>. Got value: two (see --help)"
    )
    assert cli_error("--config", factorise, "--model.init_args.learning_rate", "0.1") == (
        "error: Parser key \"model\": Option 'learning_rate' is not accepted (see --help)"
    )


def test_progress_bar_switch(configs: Path, cli_error: Callable[..., str]) -> None:
    line = cli_error("--config", str(configs / "factorise.yaml"), "--trainer.enable_progress_bar", "false")
    assert "use --progress_bar.enabled false" in line or "with --progress_bar.enabled false" in line


@pytest.mark.parametrize(
    ("length", "total"),
    [(["--trainer.max_steps", "30"], 30), (["--trainer.max_steps", "-1", "--trainer.max_epochs", "1"], 100)],
)
def test_progress_bar_counts_steps_not_batches(
    tmp_path: Path, configs: Path, capsys: pytest.CaptureFixture[str], length: list[str], total: int
) -> None:
    """The packaged configs take 10 steps per batch: the bar still counts the lab's steps, up to max_steps or to
    the end of the last epoch (1 epoch of 100 steps)."""
    results = run(["fit", "--config", str(configs / "factorise.yaml"), *length, "--progress_bar.refresh_seconds", "0",
                   "--trainer.default_root_dir", str(tmp_path)])  # fmt: skip
    assert results["runs"][0]["epochs"] == total
    states = [
        (int(done), int(of))
        for done, of in re.findall(r"LowRankFactorisation:.*?\| (\d+)/(\d+) ", capsys.readouterr().err)
    ]
    assert states[0] == (0, total) and states[-1] == (total, total)
    assert {done % 10 for done, _ in states} == {0}


def test_log_every_n_steps_zero(
    tmp_path: Path, configs: Path, run_cli: Callable[..., Any], cli_error: Callable[..., str]
) -> None:
    """It used to end with a ZeroDivisionError traceback. 0 is Lightning's "never"; every step is still a point."""
    run_cli(
        "--config", str(configs / "factorise.yaml"), "--trainer.log_every_n_steps", "0", "--trainer.max_steps", "20"
    )
    events = read_run(tmp_path / "lightning_logs" / "version_0")
    assert [event.step for event in events.Scalars("train/loss")] == list(range(1, 21))
    line = cli_error("--config", str(configs / "factorise.yaml"), "--trainer.log_every_n_steps", "-1")
    assert line == "error: trainer.log_every_n_steps must be 0 or more, got -1"


def test_a_command_lightning_refuses(
    tmp_path: Path, configs: Path, run_cli: Callable[..., Any], cli_error: Any
) -> None:
    run_cli("--config", str(configs / "mlp.yaml"), "--trainer.max_steps", "2")
    checkpoint = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    line = cli_error("test", "--config", "mlp", "--ckpt_path", str(checkpoint))
    assert "test_step" in line


# -------------------------------------------------------------------------------- console script, resume


def test_console_script_exits_0_after_a_good_run(tmp_path: Path) -> None:
    """The console script's wrapper passes what ``main`` returns to ``sys.exit``: a results dict used to exit 1."""
    assert 'lab2 = "lab2_lightning.cli:main"' in (ROOT / "pyproject.toml").read_text()
    wrapper = "import sys; from lab2_lightning.cli import main; sys.exit(main())"  # what pip writes for it
    done = subprocess.run(
        [sys.executable, "-c", wrapper, "fit", "--config", "factorise", "--trainer.max_steps", "2",
         "--progress_bar.enabled", "false"],
        cwd=tmp_path, capture_output=True, text=True, timeout=subprocess_timeout(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("results: ")


def test_fit_ckpt_path_last_continues_the_newest_run(
    tmp_path: Path, configs: Path, run_cli: Callable[..., Any]
) -> None:
    args = ["--config", str(configs / "factorise.yaml"), "--checkpoint.every_n_epochs", "1"]
    run_cli(*args, "--trainer.max_steps", "200")
    resumed = run_cli(*args, "--trainer.max_steps", "300", "--ckpt_path", "last")
    assert [p.name for p in (tmp_path / "lightning_logs").iterdir()] == ["version_0"]  # the same run directory
    assert read_results(tmp_path)["runs"][0]["epochs"] == resumed["runs"][0]["epochs"] == 300
    straight = run(
        ["fit", *args, "--trainer.max_steps", "300", "--trainer.default_root_dir", str(tmp_path / "straight"),
         "--progress_bar.enabled", "false"]
    )  # fmt: skip
    assert json.dumps(resumed["runs"]) == json.dumps(straight["runs"])


def test_resume_with_other_settings_is_refused(
    tmp_path: Path, configs: Path, run_cli: Callable[..., Any], cli_error: Any
) -> None:
    run_cli("--config", str(configs / "factorise.yaml"), "--trainer.max_steps", "100")
    line = cli_error("--config", str(configs / "factorise.yaml"), "--model.lr", "0.005", "--ckpt_path", "last")
    assert re.fullmatch(r"error: .*last\.ckpt: model\.lr is 0\.01 in the checkpoint but 0\.005 here; .*", line)


GC_CALLER = """
import gc
from lab2_lightning.cli import run

class Node: pass

def cycle():
    node = Node(); node.self = node

gc.disable()  # a caller that runs with the collector off keeps it off
try: run(["fit", "--no_such_option"])
except SystemExit as stop: assert stop.code == 2
assert not gc.isenabled()
gc.enable()
cycle()  # made between two runs: still the collector's to free, never frozen by a later run
try: run(["fit", "--no_such_option"])
except SystemExit as stop: assert stop.code == 2
assert gc.isenabled()
gc.collect()
assert not any(type(o) is Node for o in gc.get_objects())
print("ok")
"""


def test_run_from_python_leaves_the_callers_collector_alone() -> None:
    done = subprocess.run(
        [sys.executable, "-c", GC_CALLER], capture_output=True, text=True, timeout=subprocess_timeout()
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
