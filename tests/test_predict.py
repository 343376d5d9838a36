"""Prediction through the Trainer (``lab2 predict --ckpt_path CKPT --data.path new.csv``): columns matched by name,
the training statistics, files without labels or header, one-line errors, and the CSV the writer makes."""

from __future__ import annotations

import csv
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from lab2_lightning.callbacks.prediction_writer import prediction_table
from lab2_lightning.cli import run
from lab2_lightning.data.table import align_columns, packaged_iris
from lab2_lightning.models.checkpoints import load_checkpoint
from lab2_lightning.utils.errors import LabError

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["Iris-setosa", "Iris-versicolor", "Iris-virginica"]
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def iris_rows() -> list[list[str]]:
    return [line.split(",") for line in packaged_iris().read_text().splitlines() if line.strip()]


def write_csv(path: Path, rows: list[list[str]], header: list[str] | None = None) -> Path:
    path.write_text("".join(",".join(row) + "\n" for row in ([header] if header else []) + rows))
    return path


def train_mlp(root: Path, data: Path | None = None) -> Path:
    """A short MLP run (with the data's header, if any, as its feature names); returns its last checkpoint."""
    run(
        ["fit", "--config", "mlp", "--trainer.max_steps", "20", "--trainer.default_root_dir",
         str(root), "--progress_bar.enabled", "false", *(["--data.path", str(data)] if data else [])]
    )  # fmt: skip
    (checkpoint,) = root.glob("lightning_logs/version_*/checkpoints/last.ckpt")
    return checkpoint


def predict(checkpoint: Path, data: Path, output: Path, *extra: str) -> list[dict[str, str]]:
    returned = run(
        ["predict", "--ckpt_path", str(checkpoint), "--data.path", str(data), "--prediction.output", str(output),
         "--trainer.default_root_dir", str(output.parent), "--trainer.logger", "false", *extra]
    )  # fmt: skip
    assert returned == output
    return list(csv.DictReader(output.open()))


def predict_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run(["predict", *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


@pytest.fixture(scope="module")
def named(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A model trained on Iris with a header (so by feature names), and that CSV."""
    root = tmp_path_factory.mktemp("named")
    data = write_csv(root / "iris.csv", iris_rows(), [*FEATURES, "species"])
    return train_mlp(root / "run", data), data


@pytest.fixture(scope="module")
def positional(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained on a file without a header (so by position): iris.data copied, not the packaged one, whose
    column names are known."""
    root = tmp_path_factory.mktemp("positional")
    return train_mlp(root / "run", write_csv(root / "bare.csv", iris_rows()))


def test_the_packaged_iris_model_matches_a_header_by_name(tmp_path: Path) -> None:
    """The issue's reproduction as it was seen: a model of the lab's own run (the packaged iris.data, no header), a
    CSV whose header lists the four columns in another order: the same predictions as in the training order."""
    checkpoint = train_mlp(tmp_path / "run")
    rows = [row[:4] for row in iris_rows()]
    order = [2, 0, 3, 1]
    reordered = write_csv(
        tmp_path / "reordered.csv", [[row[k] for k in order] for row in rows], [FEATURES[k] for k in order]
    )
    in_order = write_csv(tmp_path / "in_order.csv", rows, FEATURES)
    got = predict(checkpoint, reordered, tmp_path / "a.csv")
    assert got == predict(checkpoint, in_order, tmp_path / "b.csv")
    assert {r["predicted"] for r in got} == {"Iris-setosa", "Iris-versicolor", "Iris-virginica"}


def test_a_reordered_header_gives_the_same_predictions(tmp_path: Path, named: tuple[Path, Path]) -> None:
    """The issue's reproduction: the same four columns in another order used to give all Iris-setosa, exit 0."""
    checkpoint, data = named
    order = [3, 0, 2, 1]
    reordered = write_csv(
        tmp_path / "reordered.csv", [[row[k] for k in order] for row in iris_rows()], [FEATURES[k] for k in order]
    )
    expected = predict(checkpoint, data, tmp_path / "original.csv")
    got = predict(checkpoint, reordered, tmp_path / "reordered_predictions.csv")
    assert got == expected
    assert list(got[0]) == ["line", "predicted", *(f"p_{name}" for name in CLASSES)]
    assert [row["line"] for row in got] == [str(n) for n in range(2, 152)]  # line 1 is the header
    labels = [row[4] for row in iris_rows()]
    accuracy = sum(row["predicted"] == label for row, label in zip(got, labels, strict=True)) / len(labels)
    assert accuracy > 0.6 and len({row["predicted"] for row in got}) == 3


def test_predictions_equal_an_independent_computation(tmp_path: Path, positional: Path) -> None:
    """Softmax of the features, normalised with the statistics stored in the checkpoint, through its weights. A file
    of one row without labels, given with the training config (val_size 50), is not refused."""
    rows = [iris_rows()[k][:4] for k in (0, 60, 120)]
    new = write_csv(tmp_path / "new.csv", rows)
    got = predict(positional, new, tmp_path / "out.csv", "--config", "mlp")
    one = predict(positional, write_csv(tmp_path / "one.csv", rows[1:2]), tmp_path / "one_out.csv", "--config", "mlp")
    assert one[0] | {"line": "2"} == got[1]

    state = load_checkpoint(positional)["state_dict"]
    W1, W2, b1, b2 = (state[name][0] for name in ("W1", "W2", "b1", "b2"))  # the one member's weights
    x = torch.tensor([[float(v) for v in row] for row in rows], dtype=torch.float64)
    x = ((x - state["input_shift"].double()) / state["input_scale"].double()).to(W1.dtype)
    expected = torch.softmax(torch.relu(x @ W1 + b1) @ W2 + b2, dim=-1).double()
    probabilities = torch.tensor([[float(r[f"p_{name}"]) for name in CLASSES] for r in got], dtype=torch.float64)
    torch.testing.assert_close(probabilities, expected, atol=1e-6, rtol=0)  # the CSV has 6 decimals
    assert [r["predicted"] for r in got] == [CLASSES[k] for k in expected.argmax(dim=1).tolist()]
    assert [r["line"] for r in got] == ["1", "2", "3"]


def test_names_missing_or_unknown(tmp_path: Path, named: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint, _ = named
    rows = [row[:4] for row in iris_rows()[:3]]
    typo = write_csv(tmp_path / "typo.csv", rows, ["sepal_length", "sepal_width", "petal_length", "petal_wide"])
    line = predict_error(capsys, "--ckpt_path", str(checkpoint), "--data.path", str(typo))
    assert line == (
        f"error: {typo}: the header's feature columns do not match the model's (missing 'petal_width'; unknown "
        "'petal_wide'); the model was trained on sepal_length, sepal_width, petal_length, petal_width"
    )
    three = write_csv(tmp_path / "three.csv", [row[:3] for row in rows], FEATURES[:3])
    assert "(missing 'petal_width')" in predict_error(capsys, "--ckpt_path", str(checkpoint), "--data.path", str(three))
    assert not (tmp_path / "predictions.csv").exists() and not Path("predictions.csv").exists()


def test_without_a_header_columns_go_by_position(
    tmp_path: Path, named: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint, data = named
    bare = write_csv(tmp_path / "bare.csv", [row[:4] for row in iris_rows()])
    got = predict(checkpoint, bare, tmp_path / "bare_out.csv")
    expected = predict(checkpoint, data, tmp_path / "out.csv")
    assert [row | {"line": str(int(row["line"]) + 1)} for row in got] == expected  # the header is line 1
    three = write_csv(tmp_path / "three.csv", [row[:3] for row in iris_rows()])
    line = predict_error(capsys, "--ckpt_path", str(checkpoint), "--data.path", str(three))
    assert line == f"error: {three}: 3 feature columns, but the model was trained on 4"


def test_a_model_trained_without_a_header_goes_by_position(tmp_path: Path, positional: Path) -> None:
    rows = [row[:4] for row in iris_rows()]
    headed = write_csv(tmp_path / "headed.csv", rows, ["a", "b", "c", "d"])
    bare = write_csv(tmp_path / "bare.csv", rows)
    got = predict(positional, headed, tmp_path / "headed_out.csv")
    assert [r | {"line": ""} for r in got] == [r | {"line": ""} for r in predict(positional, bare, tmp_path / "o.csv")]


def test_prediction_errors(tmp_path: Path, positional: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = write_csv(tmp_path / "text.csv", [["1", "2", "3", "4"], ["4", "x", "6", "7"]])
    line = predict_error(capsys, "--ckpt_path", str(positional), "--data.path", str(text))
    assert line == f"error: {text}, line 2, column 2: 'x' is not a number"
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(positional.read_bytes()[:500])
    assert "not a readable checkpoint" in predict_error(capsys, "--ckpt_path", str(truncated), "--data.path", str(text))
    none = tmp_path / "none.ckpt"
    assert "no such checkpoint file" in predict_error(capsys, "--ckpt_path", str(none), "--data.path", str(text))
    assert predict_error(capsys, "--data.path", str(text)).startswith("error: predict needs a trained MLP: --ckpt_path")
    assert not list(tmp_path.glob("*predictions*")) and not Path("predictions.csv").exists()


def test_checkpoint_of_the_other_model(tmp_path: Path, configs: Path, run_cli: Callable[..., Any], capsys: Any) -> None:
    run_cli("--config", str(configs / "factorise.yaml"), "--trainer.max_steps", "2")
    checkpoint = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    new = write_csv(tmp_path / "new.csv", [row[:4] for row in iris_rows()[:2]])
    line = predict_error(capsys, "--ckpt_path", str(checkpoint), "--data.path", str(new))
    expected = "a LowRankFactorisation does not classify; predict needs the checkpoint of an MLP (LabMLP)"
    assert line == f"error: {checkpoint}: {expected}"


def test_a_model_of_several_seeds_predicts_in_long_format(tmp_path: Path, positional: Path) -> None:
    """One row per seed and input row, with a ``seed`` column; seed 0's rows are those of a model of seed 0 alone."""
    run(
        ["fit", "--config", "mlp", "--model.init_args.seeds", "[0, 1]", "--trainer.max_steps", "20",
         "--trainer.default_root_dir", str(tmp_path), "--progress_bar.enabled", "false"]
    )  # fmt: skip
    (checkpoint,) = tmp_path.glob("lightning_logs/version_*/checkpoints/last.ckpt")
    new = write_csv(tmp_path / "new.csv", [row[:4] for row in iris_rows()[::30]])
    both = predict(checkpoint, new, tmp_path / "both.csv")
    alone = predict(positional, new, tmp_path / "alone.csv")
    assert list(both[0]) == ["line", "seed", "predicted", *(f"p_{name}" for name in CLASSES)]
    assert [row["seed"] for row in both] == ["0"] * len(alone) + ["1"] * len(alone)
    assert [{k: v for k, v in row.items() if k != "seed"} for row in both[: len(alone)]] == alone


def test_several_members_are_written_in_long_format() -> None:
    probabilities = torch.tensor([[[0.7, 0.3], [0.2, 0.8]], [[0.4, 0.6], [0.9, 0.1]]], dtype=torch.float64)
    frame = prediction_table(torch.tensor([3, 5]), probabilities, ["a", "b"], [7, 8])
    assert list(frame.columns) == ["line", "seed", "predicted", "p_a", "p_b"]
    assert frame[["line", "seed", "predicted"]].values.tolist() == [[3, 7, "a"], [5, 7, "b"], [3, 8, "b"], [5, 8, "a"]]
    assert frame["p_a"].tolist() == [0.7, 0.2, 0.4, 0.9]
    one = prediction_table(torch.tensor([3, 5]), probabilities[:1], ["a", "b"], [7])
    assert list(one.columns) == ["line", "predicted", "p_a", "p_b"]
    with pytest.raises(LabError, match="shape"):
        prediction_table(torch.tensor([3, 5]), probabilities, ["a", "b", "c"], [7, 8])


def test_align_columns() -> None:
    x = torch.tensor([[1.0, 2.0, 3.0]])
    assert align_columns(x, ["c", "a", "b"], ["a", "b", "c"], 3, "f").tolist() == [[2.0, 3.0, 1.0]]
    assert align_columns(x, None, ["a", "b", "c"], 3, "f") is x  # no header: by position
    assert align_columns(x, ["p", "q", "r"], None, 3, "f") is x  # a model trained without names: by position
    with pytest.raises(LabError, match=r"^f: the header's feature columns do not match the model's \(repeated 'a'\)"):
        align_columns(x, ["a", "a", "b"], ["a", "b"], 2, "f")
    with pytest.raises(LabError, match=r"^f: 3 feature columns, but the model was trained on 2$"):
        align_columns(x, None, None, 2, "f")


def test_the_readme_prediction_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's commands as written, in an empty directory: its example used to name a checkpoint path that
    ``make lab`` does not make."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("### Classify new measurements", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line, comments=True) for line in block.replace("\\\n", " ").splitlines()]
    monkeypatch.chdir(tmp_path)
    write_csv(tmp_path / "new.csv", [row[:4] for row in iris_rows()[48:53]])
    assert [command[:2] for command in commands] == [["lab2", "fit"], ["lab2", "predict"]]
    for command in commands:
        run(command[1:])
    table = list(csv.DictReader((tmp_path / "predictions.csv").open()))
    assert [row["line"] for row in table] == ["1", "2", "3", "4", "5"]
