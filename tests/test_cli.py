"""The command line: runs into a directory, config round trip, the accelerator shorthand, TensorBoard output."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lab2_lightning.cli import build_cli, main
from tests.conftest import read_results


def event_tags(run_dir: Path) -> dict[str, list[str]]:
    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0})
    accumulator.Reload()
    return accumulator.Tags()


def test_factorise_run_writes_results_and_tensorboard(
    tmp_path: Path, configs: Path, run_cli: Callable[..., dict[str, Any]]
) -> None:
    returned = run_cli("--config", str(configs / "factorise.yaml"), "--trainer.max_steps", "300")
    results = read_results(tmp_path)
    assert results["gd_loss"] == returned["gd_loss"]
    assert results["rank"] == 2 and results["epochs"] == 300 and results["lr"] == 0.01 and results["seed"] == 0
    assert results["svd_loss"] == pytest.approx(15.2288, abs=5e-5)
    assert results["relative_gap"] == pytest.approx((results["gd_loss"] - results["svd_loss"]) / results["svd_loss"])
    assert len(results["principal_angles_deg"]) == 2 and results["map_residual"] >= 0
    assert results["settings"]["trainer"]["precision"] == "64-true"

    run_dir = tmp_path / "lightning_logs" / "version_0"
    tags = event_tags(run_dir)
    for tag in ("train/loss", "train/svd_loss", "train/relative_gap", "final/gd_loss", "final/map_residual"):
        assert tag in tags["scalars"]
    assert "pca_vs_gd" in tags["images"]
    assert (run_dir / "checkpoints" / "last.ckpt").exists()


def test_repeated_runs_get_new_versions(tmp_path: Path, configs: Path, run_cli: Callable[..., Any]) -> None:
    for _ in range(2):
        run_cli("--config", str(configs / "factorise.yaml"), "--trainer.max_steps", "2")
    assert read_results(tmp_path, 1)["epochs"] == 2
    # A fixed version reuses the directory and its config.yaml without crashing.
    for _ in range(2):
        run_cli(
            "--config", str(configs / "factorise.yaml"), "--trainer.max_steps", "2",
            "--trainer.logger", "TensorBoardLogger", "--trainer.logger.save_dir", str(tmp_path),
            "--trainer.logger.version", "fixed",
        )  # fmt: skip
    assert (tmp_path / "lightning_logs" / "fixed" / "config.yaml").exists()


def test_print_config_round_trip(
    tmp_path: Path, configs: Path, capsys: pytest.CaptureFixture[str], run_cli: Callable[..., Any]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(configs / "factorise.yaml"), "--model.rank", "3", "--print_config"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    config = yaml.safe_load(printed)
    assert config["model"]["init_args"]["rank"] == 3 and config["trainer"]["precision"] == "64-true"
    saved = tmp_path / "printed.yaml"
    saved.write_text(printed)
    results = run_cli("--config", str(saved), "--trainer.max_steps", "5")
    assert results["rank"] == 3 and results["epochs"] == 5


def test_help_shows_docstrings(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "--accelerator" in text and "Shorthand for --trainer.accelerator" in text
    assert "--data.preprocessing" in text and "variance, not standard deviation" in text


@pytest.mark.parametrize("flags", [["--accelerator", "cpu"], ["--trainer.accelerator", "cpu"]])
def test_accelerator_shorthand(tmp_path: Path, configs: Path, flags: list[str]) -> None:
    cli = build_cli(["--config", str(configs / "factorise.yaml"), *flags, "--trainer.default_root_dir", str(tmp_path)])
    assert cli.trainer.accelerator.__class__.__name__ == "CPUAccelerator"
    assert cli.config.trainer.accelerator == "cpu"


def test_model_chosen_by_short_name(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    results = run_cli(
        "--model", "LowRankFactorisation", "--model.rank", "1", "--trainer.max_steps", "3",
        "--trainer.precision", "64-true",
    )  # fmt: skip
    assert results["model"] == "LowRankFactorisation" and results["rank"] == 1
