"""The whole lab with tiny settings: the report, its figures and results.json, and numbers that agree."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from lab2_lightning.cli import run
from lab2_lightning.lab.report import main as report_main
from tests.conftest import read_run

FIGURES = ["fig1_pca_vs_gd", "loss_curves", "accuracy_spread", "rank_sweep", "confusion_train", "confusion_val"]
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])")


def leaves(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return [leaf for value in node.values() for leaf in leaves(value)]
    if isinstance(node, list):
        return [leaf for value in node for leaf in leaves(value)]
    return [node]


def table_numbers(markdown: str) -> list[str]:
    rows = [line for line in markdown.splitlines() if line.startswith("|") and not line.startswith("|---")]
    return [token for row in rows for token in NUMBER.findall(row)]


def in_results(token: str, values: list[Any]) -> bool:
    digits = len(token.split(".")[1]) if "." in token else 0
    for value in values:
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, (int, float)) and f"{value:.{digits}f}" == token:
            return True
        if isinstance(value, str) and token in value:
            return True
    return False


@pytest.fixture(scope="module")
def lab_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("lab")
    run(
        ["lab", "--seeds", "2", "--factorise_epochs", "30", "--mlp_epochs", "5", "--out", str(root / "reports"),
         "--log_dir", str(root / "logs")]
    )  # fmt: skip
    return root, json.loads((root / "reports" / "results.json").read_text())


def test_report_figures_and_results_exist(lab_run: tuple[Path, dict[str, Any]]) -> None:
    root, results = lab_run
    reports = root / "reports"
    assert (reports / "lab2.md").is_file()
    for stem in FIGURES:
        assert (reports / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(results["factorisation"]["runs"]) == 2 and len(results["mlp"]["runs"]) == 2
    assert [r["rank"] for r in results["rank_sweep"]] == [1, 2, 3, 4]
    assert results["rank_sweep"][-1]["svd_loss"] == 0.0
    assert results["published"]["gd_loss"] == 15.2817 and results["published"]["svd_loss"] == 15.2288
    assert results["environment"]["device_type"] == "cpu"
    assert list((root / "logs" / "lab" / "version_0").iterdir())  # TensorBoard logs of every run and the summary


def test_every_table_number_is_in_results_json(lab_run: tuple[Path, dict[str, Any]]) -> None:
    root, results = lab_run
    markdown = (root / "reports" / "lab2.md").read_text()
    values = leaves(results)
    tokens = table_numbers(markdown)
    assert len(tokens) > 60
    missing = [token for token in tokens if not in_results(token, values)]
    assert not missing, f"numbers in lab2.md that results.json does not hold: {missing}"
    # The check can fail: a number that is not in the results is caught.
    assert not in_results("123.4567", values)


def test_report_rebuilds_from_saved_results(lab_run: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    root, _ = lab_run
    rebuilt = report_main([str(root / "reports" / "results.json"), "--out", str(tmp_path)])
    assert rebuilt.read_text() == (root / "reports" / "lab2.md").read_text()
    assert all((tmp_path / f"{stem}.png").is_file() for stem in FIGURES)


def test_report_from_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "results.json"
    bad.write_text('{"factorisation": {}}')
    with pytest.raises(SystemExit) as exit_info:
        report_main([str(bad)])
    assert exit_info.value.code == 2
    assert "results.json: not a lab results file (missing 'published', 'rank_sweep'" in capsys.readouterr().err


def test_lab_rejects_bad_seeds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run(["--seeds", "0", "--out", str(tmp_path / "reports"), "--log_dir", str(tmp_path / "logs")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == "error: --seeds must be at least 1, got 0"


def test_lab_help_names_the_other_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--seeds" in text and "how many seeds" in text and "fit --config factorise" in text
    assert "fit, validate, test, predict" in text and "report" in text


@pytest.mark.slow
def test_default_whole_lab_reproduces_the_labs_numbers(tmp_path: Path) -> None:
    """The README's main job as it is (10 seeds, 1000 and 100 steps): about 25 s on 2 cores, so marked slow."""
    results = run(["--out", str(tmp_path / "reports"), "--log_dir", str(tmp_path / "logs"), "--accelerator", "cpu"])
    fact = results["factorisation"]
    assert round(fact["svd_loss"], 4) == 15.2288
    assert all(0 <= run["gd_loss"] - fact["svd_loss"] <= 0.05 for run in fact["runs"])
    assert [round(r["svd_loss"], 4) for r in results["rank_sweep"]][:3] == [51.3231, 15.2288, 3.5288]
    for split, rows in (("train", 100), ("val", 50)):
        assert sum(results["mlp"]["summary"][split]["class_counts"].values()) == rows
        assert results["mlp"]["summary"][split]["acc"]["mean"] > 0.8


def test_report_curves_are_tensorboards_points(lab_run: tuple[Path, dict[str, Any]]) -> None:
    """One step numbering: TensorBoard, results.json and the report's curves agree point for point, and the last
    validation point is the final validation loss."""
    _, results = lab_run
    lab_dir = Path(results["settings"]["tensorboard"])
    mlp = results["mlp"]
    curves = mlp["curves_seed0"]
    assert curves["train/loss"]["step"] == list(range(1, 6))  # --mlp_epochs 5: every step a point
    assert curves["val/loss"]["step"][-1] == 5
    assert curves["val/loss"]["value"][-1] == pytest.approx(mlp["runs"][0]["val"]["loss"], rel=1e-12)
    for member, curve in (
        ("mlp/seed_0", curves["train/loss"]),
        ("factorise/seed_0_rank_2", results["factorisation"]["curves_seed0"]["train/loss"]),  # the rank sweep's too
    ):
        run = read_run(lab_dir / member)
        events = run.Scalars("train/loss")
        assert [e.step for e in events] == curve["step"]
        assert [e.value for e in events] == pytest.approx(curve["value"], rel=1e-6)  # TensorBoard keeps float32
    assert len(results["factorisation"]["curves_seed0"]["train/loss"]["step"]) == 30
