"""``lab2``'s command line: help, configs, options it refuses, loggers, and the run folders it claims."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import QUIET, fit, lab2

SHORT = ("--trainer.max_steps", "10", *QUIET)


def _exit_code(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int | str | None, str]:
    with pytest.raises(SystemExit) as exit_info:
        lab2(*args)
    return exit_info.value.code, capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--help"], ["--seeds", "--out", "fit", "report"]),
        (["fit", "--help"], ["--trainer.max_steps", "--ckpt_path", "--model", "--data", "--threads"]),
        (["predict", "--help"], ["--prediction.output", "--ckpt_path"]),
        (["report", "--help"], ["--out", "results"]),
    ],
)
def test_help_exits_0_and_names_the_options(
    capsys: pytest.CaptureFixture[str], args: list[str], names: list[str]
) -> None:
    """``--help`` of the lab and of each command exits 0 and lists its options."""
    code, out = _exit_code(capsys, *args)
    assert code in (0, None)
    for name in names:
        assert name in out, name


def test_model_help_names_the_models_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    """``fit --model.help LowRankFactorisation`` lists the model's own options (rank, seeds, lr)."""
    code, out = _exit_code(capsys, "fit", "--model.help", "lab2_lightning.models.LowRankFactorisation")
    assert code in (0, None)
    for name in ("rank", "seeds", "lr"):
        assert f"--model.init_args.{name}" in out or f"--model.{name}" in out, name


def test_print_config_output_runs_again(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The config ``--print_config`` prints is a config that runs, with the settings it was printed with."""
    code, out = _exit_code(capsys, "fit", "--config", "factorise", "--trainer.max_steps", "20", "--print_config")
    assert code in (0, None)
    assert not (tmp_path / "lightning_logs").exists()  # printing runs nothing
    (tmp_path / "printed.yaml").write_text(out)
    results = fit("--config", "printed.yaml")
    assert results["runs"][0]["steps"] == 20
    assert results["model"] == "LowRankFactorisation"
    assert results["settings"]["precision"] == "64-true"


@pytest.mark.parametrize("name", ["mlp", "mlp.yaml"])
def test_a_packaged_config_by_name_works_from_any_folder(tmp_path: Path, name: str) -> None:
    """``--config mlp`` finds the packaged config in a folder that has no such file."""
    assert not list(tmp_path.iterdir())
    results = fit("--config", name, "--trainer.max_steps", "10")
    assert results["model"] == "LabMLP"
    assert results["runs"][0]["steps"] == 10


def test_a_local_file_wins_over_the_packaged_config_of_that_name(tmp_path: Path) -> None:
    """A file named like a packaged config in the working folder is the one read."""
    (tmp_path / "mlp.yaml").write_text("trainer:\n  max_steps: 3\nmodel:\n  class_path: lab2_lightning.models.LabMLP\n")
    results = fit("--config", "mlp.yaml")
    assert results["runs"][0]["steps"] == 3


def test_an_unknown_config_is_named(fails: Callable[..., str]) -> None:
    """``--config`` of a name that is neither a file nor a packaged config exits 2 naming it."""
    line = fails("fit", "--config", "no_such_config")
    assert "--config no_such_config" in line
    assert "complete, factorise, large, mlp, mlp_mean" in line  # the packaged ones


def test_an_unknown_option_is_named(fails: Callable[..., str]) -> None:
    """An option lab2 does not have exits 2 with one line naming it."""
    line = fails("fit", "--config", "factorise", "--bogus_option", "3")
    assert "--bogus_option" in line


def test_an_unknown_lab_option_is_named(fails: Callable[..., str]) -> None:
    """The whole lab refuses an option it does not have, naming it."""
    line = fails("--no_such_lab_option", "1")
    assert "--no_such_lab_option" in line


def test_rank_zero_is_refused_naming_rank(fails: Callable[..., str]) -> None:
    """``--model.rank 0`` exits 2 naming ``rank``."""
    line = fails("fit", "--config", "factorise", "--model.rank", "0")
    assert "rank" in line


def test_a_negative_lr_is_refused_naming_lr(fails: Callable[..., str]) -> None:
    """``--model.lr -1`` exits 2 naming ``lr``."""
    line = fails("fit", "--config", "factorise", "--model.lr", "-1")
    assert "lr" in line


def test_an_optimizer_option_is_refused(fails: Callable[..., str], tmp_path: Path) -> None:
    """``--optimizer Adam`` exits 2 (the lab's step is part of the model) and nothing is trained."""
    line = fails("fit", "--config", "factorise", "--optimizer", "Adam")
    assert "--optimizer" in line
    assert not (tmp_path / "lightning_logs").exists()


def test_an_unknown_command_is_refused(fails: Callable[..., str]) -> None:
    """``lab2 fitt`` exits 2 naming the word and the commands there are."""
    line = fails("fitt", "--config", "factorise")
    assert "fitt" in line
    assert "fit" in line.replace("fitt", "")


def test_a_csv_logger_keeps_results_in_its_run_folder(tmp_path: Path) -> None:
    """With ``--trainer.logger CSVLogger`` the run's folder (save_dir/lightning_logs/version_0) holds results.json,
    the checkpoint and the logger's metrics.csv."""
    fit("--config", "factorise", "--trainer.logger", "CSVLogger", "--trainer.logger.save_dir", "csv", *SHORT)
    run = tmp_path / "csv" / "lightning_logs" / "version_0"
    assert json.loads((run / "results.json").read_text())["runs"][0]["steps"] == 10
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert (run / "metrics.csv").is_file()


@pytest.mark.parametrize("logger", ["lightning.pytorch.loggers.MLFlowLogger", "lightning.pytorch.loggers.WandbLogger"])
def test_an_unsupported_logger_is_refused_before_training(
    fails: Callable[..., str], tmp_path: Path, logger: str
) -> None:
    """A logger whose files lab2 could not keep with the run exits 2 naming it, before any folder is made."""
    line = fails("fit", "--config", "factorise", "--trainer.logger", logger, *SHORT)
    assert logger.rsplit(".", 1)[-1] in line
    assert not (tmp_path / "lightning_logs").exists()
    assert not list(tmp_path.rglob("*.ckpt"))


def test_a_class_that_is_not_a_logger_is_refused(fails: Callable[..., str], tmp_path: Path) -> None:
    """``--trainer.logger torch.nn.Linear`` exits 2 naming --trainer.logger, before training."""
    line = fails("fit", "--config", "factorise", "--trainer.logger", "torch.nn.Linear", *SHORT)
    assert "trainer.logger" in line
    assert not list(tmp_path.rglob("*.ckpt"))


def test_two_runs_get_two_folders(tmp_path: Path) -> None:
    """Two runs in the same folder get version_0 and version_1, each with its own results and checkpoint."""
    fit("--config", "factorise", *SHORT)
    fit("--config", "factorise", "--trainer.max_steps", "12", *QUIET)
    runs = tmp_path / "lightning_logs"
    assert sorted(p.name for p in runs.iterdir()) == ["version_0", "version_1"]
    assert json.loads((runs / "version_0/results.json").read_text())["runs"][0]["steps"] == 10
    assert json.loads((runs / "version_1/results.json").read_text())["runs"][0]["steps"] == 12
    assert (runs / "version_1/checkpoints/last.ckpt").is_file()


def test_a_named_version_that_exists_is_refused(fails: Callable[..., str], tmp_path: Path) -> None:
    """``--trainer.logger.version version_0`` when version_0 exists exits 2 naming it; the earlier run's results.json
    is untouched."""
    fit("--config", "factorise", *SHORT)
    results = tmp_path / "lightning_logs" / "version_0" / "results.json"
    before = results.read_bytes()
    line = fails("fit", "--config", "factorise", "--trainer.logger.version", "version_0", "--trainer.max_steps", "12")
    assert "version_0" in line
    assert results.read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "lightning_logs").iterdir()) == ["version_0"]


def test_an_integer_version_that_exists_is_refused(fails: Callable[..., str], tmp_path: Path) -> None:
    """``--trainer.logger.version 0`` means version_0 (Lightning's convention): refused when version_0 exists."""
    fit("--config", "factorise", *SHORT)
    line = fails("fit", "--config", "factorise", "--trainer.logger.version", "0", *SHORT)
    assert "version_0" in line


def test_a_named_version_is_that_folder(tmp_path: Path) -> None:
    """``--trainer.logger.version mine`` writes the run into lightning_logs/mine; a second run of that name is
    refused."""
    fit("--config", "factorise", "--trainer.logger.version", "mine", *SHORT)
    assert (tmp_path / "lightning_logs" / "mine" / "results.json").is_file()
    with pytest.raises(SystemExit) as exit_info:
        fit("--config", "factorise", "--trainer.logger.version", "mine", *SHORT)
    assert exit_info.value.code == 2


def test_without_a_logger_results_still_go_to_a_fresh_folder(tmp_path: Path) -> None:
    """``--trainer.logger false`` still writes results.json and the checkpoint, into a new version folder."""
    fit("--config", "factorise", *SHORT)
    fit("--config", "factorise", "--trainer.logger", "false", *SHORT)
    run = tmp_path / "lightning_logs" / "version_1"
    assert json.loads((run / "results.json").read_text())["runs"][0]["steps"] == 10
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert not list(run.glob("events.out.tfevents.*"))


def test_a_fit_writes_its_config_beside_its_results(tmp_path: Path) -> None:
    """The run's folder holds the config it ran with, which names the model and the settings given."""
    fit("--config", "factorise", "--model.rank", "3", *SHORT)
    config = (tmp_path / "lightning_logs" / "version_0" / "config.yaml").read_text()
    assert "LowRankFactorisation" in config
    assert "rank: 3" in config


def test_validate_measures_a_checkpoint(capsys: pytest.CaptureFixture[str], mlp_run: object) -> None:
    """``lab2 validate --config mlp --ckpt_path CKPT`` exits normally and prints each seed's validation accuracy."""
    lab2("validate", "--config", "mlp", "--model.seeds", "[0,1,2]", "--ckpt_path", str(mlp_run.checkpoint), *QUIET)
    out = capsys.readouterr().out
    accuracy = mlp_run.results["runs"][0]["val"]["acc"]
    assert f"seed 0: validation accuracy {accuracy:.3f}" in out


def test_a_refused_command_leaves_no_run_folder(fails: Callable[..., str], tmp_path: Path) -> None:
    """``--model.rank 5`` (refused when the model is built) and ``test`` (neither model has a test step) leave
    nothing behind: the next run is version_0."""
    fails("fit", "--config", "factorise", "--model.rank", "5", *SHORT)
    assert "test_step" in fails("test", "--config", "mlp", *QUIET)
    fit("--config", "factorise", *SHORT)
    assert sorted(p.name for p in (tmp_path / "lightning_logs").iterdir()) == ["version_0"]


def test_repeated_seeds_are_refused_or_kept_apart(tmp_path: Path) -> None:
    """A seed given twice is refused (exit 2 naming model.seeds), or each member gets its own TensorBoard run."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    try:
        fit("--config", "factorise", "--model.seeds", "[0,0]", *SHORT)
    except SystemExit as exit_info:
        assert exit_info.code == 2
        return
    for folder in (tmp_path / "lightning_logs" / "version_0").iterdir():
        if folder.is_dir() and folder.name.startswith("seed_"):
            accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0})
            accumulator.Reload()
            steps = [event.step for event in accumulator.Scalars("summed_squared_error/train")]
            assert len(steps) == len(set(steps)), folder.name


@pytest.mark.parametrize(("threads", "expected"), [("auto", 1), ("2", 2)])
def test_threads(tmp_path: Path, threads: str, expected: int) -> None:
    """``--threads auto`` runs Iris on one thread (more would only spin); a number is taken as given."""
    import torch

    torch.set_num_threads(3)  # neither answer, so the fit must set it
    try:
        fit("--config", "factorise", "--threads", threads, *SHORT)
        assert torch.get_num_threads() == expected
    finally:
        torch.set_num_threads(1)  # the oracles' thread count, for the tests after this one


@pytest.mark.parametrize("command", ["validate", "predict"])
def test_measuring_without_a_checkpoint_is_refused(fails: Callable[..., str], tmp_path: Path, command: str) -> None:
    """validate and predict of untrained weights would report numbers of a random start: refused, naming
    --ckpt_path, before any folder is made."""
    assert "--ckpt_path" in fails(command, "--config", "mlp")
    assert not (tmp_path / "lightning_logs").exists() or not any((tmp_path / "lightning_logs").iterdir())


@pytest.mark.parametrize("accelerator", ["bogus", "tpu"])  # tpu: a package it needs (torch_xla) is missing
def test_a_bad_trainer_option_is_one_line(fails: Callable[..., str], tmp_path: Path, accelerator: str) -> None:
    """The Trainer's own refusal of its options is the user's error: one line naming --trainer, no folder left."""
    assert "--trainer" in fails("fit", "--config", "mlp", "--trainer.accelerator", accelerator, *QUIET)
    assert not any((tmp_path / "lightning_logs").iterdir())


def test_a_matrix_too_large_for_memory_is_one_line(fails: Callable[..., str], tmp_path: Path) -> None:
    """A shape whose U cannot be allocated (petabytes: beyond any address space) ends in one line, not the
    allocator's traceback."""
    (tmp_path / "t.csv").write_text("row,col,value\n0,0,1\n1,1,2\n2,0,3\n3,1,5\n")
    line = fails(
        "fit", "--config", "complete", "--data", "lab2_lightning.data.EntriesDataModule", "--data.path", "t.csv",
        "--data.shape", "[1000000000000000, 5]", *QUIET,
    )  # fmt: skip
    assert line.startswith("error: out of memory: U and V (1,000,000,000,000,000 + 5 rows") and "GiB" in line


def test_an_index_whose_factors_would_not_fit_is_refused_before_they_are_drawn(
    fails: Callable[..., str], tmp_path: Path
) -> None:
    """One entry in row 2**31 - 1 (a valid index) makes U 2**31 rows long (here 7 TiB over 64 seeds): refused in
    one line before it is drawn, where Linux would hand out the memory and kill the process (or another) once it is
    filled in."""
    (tmp_path / "t.csv").write_text("0,0,1\n1,1,2\n2,0,3\n3,1,5\n2147483647,0,1\n")
    line = fails(
        "fit", "--config", "complete", "--data", "lab2_lightning.data.EntriesDataModule", "--data.path", "t.csv",
        "--data.holdout", "0.2", "--model.rank", "2", "--model.seeds", json.dumps(list(range(64))), *QUIET,
    )  # fmt: skip
    assert line.startswith("error: out of memory: U and V (2,147,483,648 + 2 rows")


def test_a_run_that_trains_nothing_is_refused_and_leaves_no_folder(fails: Callable[..., str], tmp_path: Path) -> None:
    """limit_train_batches 0 trains nothing: one line, and its new folder is removed (nothing in it to keep)."""
    assert "nothing was trained" in fails("fit", "--config", "mlp", "--trainer.limit_train_batches", "0", *QUIET)
    assert not any((tmp_path / "lightning_logs").iterdir())


def test_default_root_dir_holds_the_runs(tmp_path: Path) -> None:
    """--trainer.default_root_dir decides where lightning_logs/version_N goes, as in Lightning."""
    fit("--config", "factorise", "--trainer.default_root_dir", "elsewhere", *SHORT)
    assert (tmp_path / "elsewhere" / "lightning_logs" / "version_0" / "results.json").is_file()


def test_a_torchrun_launch_that_fails_leaves_no_note_of_its_folder(
    fails: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first process of a torchrun launch names its run's folder for the others in a file; when the run fails
    before its first checkpoint (here: no such data file), that file goes with the folder."""
    for name, value in {"WORLD_SIZE": "2", "RANK": "0", "TORCHELASTIC_RUN_ID": "test-launch"}.items():
        monkeypatch.setenv(name, value)
    assert "nope.csv" in fails("fit", "--config", "complete", "--data.path", "nope.csv", *QUIET)
    assert not any((tmp_path / "lightning_logs").iterdir())


def test_config_with_an_equals_sign_finds_the_packaged_config(tmp_path: Path) -> None:
    assert fit("--config=mlp", "--trainer.max_steps", "3")["runs"][0]["steps"] == 3


@pytest.mark.parametrize("strategy", ["ddp_spawn", "ddp_notebook"])
def test_a_strategy_whose_processes_keep_the_results_is_refused(
    fails: Callable[..., str], tmp_path: Path, strategy: str
) -> None:
    """Multiprocessing strategies train in processes that keep the results: refused before any folder is made."""
    line = fails("fit", "--config", "mlp", "--trainer.strategy", strategy, "--trainer.devices", "2", *QUIET)
    assert f"--trainer.strategy {strategy}" in line
    assert not (tmp_path / "lightning_logs").exists() or not any((tmp_path / "lightning_logs").iterdir())
