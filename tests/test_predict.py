"""Prediction from a checkpoint: the training statistics, a CSV without labels, and the errors."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from lab2_lightning.data.datamodule import IrisDataModule
from lab2_lightning.data.table import packaged_iris
from lab2_lightning.predict import load_mlp, main

CLASSES = ["Iris-setosa", "Iris-versicolor", "Iris-virginica"]


@pytest.fixture
def mlp_checkpoint(tmp_path: Path, configs: Path, run_cli: Callable[..., dict[str, Any]]) -> Path:
    run_cli("--config", str(configs / "mlp.yaml"), "--trainer.max_steps", "20")
    return tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"


def predict_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1
    return err


def test_predicts_a_csv_without_labels_with_the_training_statistics(tmp_path: Path, mlp_checkpoint: Path) -> None:
    rows = packaged_iris().read_text().splitlines()[:1] + packaged_iris().read_text().splitlines()[120:121]
    new = tmp_path / "new.csv"
    new.write_text("".join(",".join(row.split(",")[:4]) + "\n" for row in rows))
    output = main([str(mlp_checkpoint), str(new), "-o", str(tmp_path / "out.csv")])
    table = list(csv.DictReader(output.open()))
    assert [r["line"] for r in table] == ["1", "2"]
    assert list(table[0]) == ["line", "predicted"] + [f"p_{c}" for c in CLASSES]
    for r in table:
        assert sum(float(r[f"p_{c}"]) for c in CLASSES) == pytest.approx(1.0, abs=1e-5)
        assert r["predicted"] == max(CLASSES, key=lambda c: float(r[f"p_{c}"]))

    # The same rows, preprocessed with the training data's statistics, give the same probabilities.
    model = load_mlp(mlp_checkpoint)
    data = IrisDataModule(preprocessing="lab", stats_rows="all")
    with torch.no_grad():
        expected = torch.softmax(model(data.train_x[[0, 120]].float()), dim=1)
    got = torch.tensor([[float(r[f"p_{c}"]) for c in CLASSES] for r in table])
    torch.testing.assert_close(got, expected, atol=2e-6, rtol=0)


def test_prediction_errors(tmp_path: Path, mlp_checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    three = tmp_path / "three.csv"
    three.write_text("1,2,3\n4,5,6\n")
    assert "3 feature columns, but the model was trained on 4" in predict_error(capsys, str(mlp_checkpoint), str(three))
    text = tmp_path / "text.csv"
    text.write_text("1,2,3,4\n4,x,6,7\n")
    assert "line 2, column 2: 'x' is not a number" in predict_error(capsys, str(mlp_checkpoint), str(text))
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(mlp_checkpoint.read_bytes()[:500])
    assert "not a readable checkpoint" in predict_error(capsys, str(truncated), str(three))
    assert "no such checkpoint file" in predict_error(capsys, str(tmp_path / "none.ckpt"), str(three))
    assert not (tmp_path / "predictions.csv").exists()


def test_checkpoint_of_the_other_model(
    tmp_path: Path, configs: Path, run_cli: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    run_cli("--config", str(configs / "factorise.yaml"), "--trainer.max_steps", "2")
    checkpoint = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    assert "LowRankFactorisation checkpoint, not an MLP's" in predict_error(capsys, str(checkpoint), "x.csv")
