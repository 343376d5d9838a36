"""``lab2 predict``: a fit's checkpoint classifies a new file, matching its columns by name, and never writes over
its input."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from conftest import IRIS_FEATURES, MLP_SEEDS, QUIET, Run, lab2, plain_mlp

from lab2_lightning.data.reading import packaged_iris, read_data
from lab2_lightning.models.reference import mlp_forward

CLASSES = ["Iris-setosa", "Iris-versicolor", "Iris-virginica"]


def iris_rows() -> list[list[str]]:
    return [line.split(",") for line in packaged_iris().read_text().splitlines() if line.strip()]


def write_csv(path: Path, header: list[str] | None, rows: list[list[str]]) -> Path:
    path.write_text("\n".join(",".join(row) for row in ([header] if header else []) + rows) + "\n")
    return path


def predict(run: Run, data: str, output: str, *extra: str) -> None:
    lab2(
        "predict",
        "--ckpt_path",
        str(run.checkpoint),
        "--data.path",
        data,
        "--prediction.output",
        output,
        *extra,
        *QUIET,
    )


def read_predictions(path: Path) -> list[dict[str, str]]:
    with path.open() as file:
        return list(csv.DictReader(file))


@pytest.fixture
def in_order(tmp_path: Path) -> Path:
    """Iris with a header in UCI's column order, species last."""
    return write_csv(tmp_path / "in_order.csv", [*IRIS_FEATURES, "species"], iris_rows())


def test_predictions_are_the_trained_weights_probabilities(mlp_run: Run, in_order: Path, tmp_path: Path) -> None:
    """Each seed's probabilities are softmax of the oracle weights' logits on the raw rows normalised as in
    training ((x - mean) / var over all 150 rows); a row per seed and input row, with the file's line numbers."""
    predict(mlp_run, in_order.name, "predictions.csv")
    rows = read_predictions(tmp_path / "predictions.csv")
    assert len(rows) == 150 * len(MLP_SEEDS)
    raw = torch.from_numpy(read_data(packaged_iris()).features)
    x = ((raw - raw.mean(dim=0)) / raw.var(dim=0)).float()
    for seed in MLP_SEEDS:
        weights = plain_mlp(seed)
        expected = torch.softmax(mlp_forward(x, weights["W1"], weights["W2"], weights["b1"], weights["b2"]), dim=-1)
        mine = [row for row in rows if row["seed"] == str(seed)]
        assert [int(row["line"]) for row in mine] == list(range(2, 152))  # line 1 is the header
        got = torch.tensor([[float(row[f"p_{name}"]) for name in CLASSES] for row in mine], dtype=torch.float64)
        assert torch.allclose(got, expected.double(), atol=1e-6)
        assert [row["predicted"] for row in mine] == [CLASSES[k] for k in expected.argmax(dim=1).tolist()]


def test_columns_in_another_order_give_the_same_probabilities(mlp_run: Run, in_order: Path, tmp_path: Path) -> None:
    """A file whose header lists the iris columns in another order (label in the middle, given by label_column) gets
    exactly the predictions of the file in the training order."""
    names = [*IRIS_FEATURES, "species"]
    order = [3, 4, 1, 0, 2]
    write_csv(tmp_path / "shuffled.csv", [names[j] for j in order], [[row[j] for j in order] for row in iris_rows()])
    predict(mlp_run, in_order.name, "first.csv")
    predict(mlp_run, "shuffled.csv", "second.csv", "--data.label_column", "1")
    assert (tmp_path / "second.csv").read_text() == (tmp_path / "first.csv").read_text()


def test_a_file_without_labels_is_classified(mlp_run: Run, in_order: Path, tmp_path: Path) -> None:
    """A file of the four measurements alone (no species column) gets the same predictions."""
    write_csv(tmp_path / "unlabelled.csv", IRIS_FEATURES, [row[:4] for row in iris_rows()])
    predict(mlp_run, in_order.name, "first.csv")
    predict(mlp_run, "unlabelled.csv", "second.csv")
    assert (tmp_path / "second.csv").read_text() == (tmp_path / "first.csv").read_text()


def test_a_missing_column_is_named(fails: Callable[..., str], mlp_run: Run, tmp_path: Path) -> None:
    """A header without one of the model's columns exits 2 naming the file and the missing column; nothing is
    written."""
    write_csv(tmp_path / "three.csv", IRIS_FEATURES[:3], [row[:3] for row in iris_rows()])
    line = fails("predict", "--ckpt_path", str(mlp_run.checkpoint), "--data.path", "three.csv", *QUIET)
    assert "three.csv" in line
    assert "petal_width" in line
    assert not (tmp_path / "predictions.csv").exists()


def test_an_unknown_column_is_named(fails: Callable[..., str], mlp_run: Run, tmp_path: Path) -> None:
    """A header with a column the model was not trained on (a misspelling) exits 2 naming it."""
    names = ["sepal_length", "sepal_width", "petal_length", "petal_wdith"]
    write_csv(tmp_path / "typo.csv", names, [row[:4] for row in iris_rows()])
    line = fails("predict", "--ckpt_path", str(mlp_run.checkpoint), "--data.path", "typo.csv", *QUIET)
    assert "petal_wdith" in line


def test_a_headerless_file_of_the_wrong_width_is_refused(
    fails: Callable[..., str], mlp_run: Run, tmp_path: Path
) -> None:
    """Without a header columns go by position; three columns for a four-feature model exit 2 saying so."""
    write_csv(tmp_path / "narrow.csv", None, [row[:3] for row in iris_rows()])
    line = fails("predict", "--ckpt_path", str(mlp_run.checkpoint), "--data.path", "narrow.csv", *QUIET)
    assert "narrow.csv" in line
    assert "3" in line
    assert "4" in line


def test_the_output_may_not_be_the_input(fails: Callable[..., str], mlp_run: Run, in_order: Path) -> None:
    """``--prediction.output`` naming the input file exits 2 naming --prediction.output; the input is unchanged."""
    before = in_order.read_bytes()
    line = fails(
        "predict", "--ckpt_path", str(mlp_run.checkpoint), "--data.path", in_order.name,
        "--prediction.output", in_order.name, *QUIET,
    )  # fmt: skip
    assert "--prediction.output" in line
    assert in_order.read_bytes() == before


def test_the_output_may_not_be_a_folder(
    fails: Callable[..., str], mlp_run: Run, in_order: Path, tmp_path: Path
) -> None:
    """``--prediction.output`` naming an existing folder exits 2 naming it; the folder stays empty."""
    (tmp_path / "out").mkdir()
    line = fails(
        "predict", "--ckpt_path", str(mlp_run.checkpoint), "--data.path", in_order.name, "--prediction.output", "out",
        *QUIET,
    )  # fmt: skip
    assert "out" in line
    assert not list((tmp_path / "out").iterdir())


def test_predict_needs_a_lab2_checkpoint(fails: Callable[..., str], in_order: Path, tmp_path: Path) -> None:
    """``predict`` with a checkpoint that no lab2 run wrote exits 2 naming it."""
    torch.save({"state_dict": {}}, tmp_path / "foreign.ckpt")
    line = fails("predict", "--ckpt_path", "foreign.ckpt", "--data.path", in_order.name, *QUIET)
    assert "foreign.ckpt" in line


def test_the_output_is_never_the_checkpoint(fails: Callable[..., str], mlp_run: Run, tmp_path: Path) -> None:
    """--prediction.output naming the checkpoint being read (through another path) is refused; it stays whole."""
    ckpt = mlp_run.checkpoint
    before = ckpt.read_bytes()
    line = fails("predict", "--ckpt_path", str(ckpt), "--prediction.output", str(ckpt.parent / "x" / ".." / ckpt.name))
    assert "checkpoint" in line
    assert ckpt.read_bytes() == before


def test_without_an_output_the_predictions_go_to_the_runs_own_folder(
    capsys: pytest.CaptureFixture[str], mlp_run: Run, in_order: Path, tmp_path: Path
) -> None:
    """No ``--prediction.output``: predictions.csv in the prediction's own run folder, which the last line names;
    a second prediction gets a folder of its own, so neither replaces the other."""
    for _ in range(2):
        lab2("predict", "--ckpt_path", str(mlp_run.checkpoint), "--data.path", in_order.name, *QUIET)
    written = sorted(tmp_path.glob("lightning_logs/version_*/predictions.csv"))
    assert [path.parent.name for path in written] == ["version_0", "version_1"]
    assert (
        capsys.readouterr().out.splitlines()[-1]
        == f"450 predictions: {Path('lightning_logs/version_1/predictions.csv')}"
    )
    assert not (tmp_path / "predictions.csv").exists()
