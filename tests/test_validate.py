"""``validate``: a checkpoint's weights measured on its data, with the headline its fit printed; data that the weights
would misread (other classes, columns, statistics or held-out rows) are refused in one line."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from lab2_lightning.cli import run
from lab2_lightning.data.datamodule import IrisDataModule
from lab2_lightning.data.table import packaged_iris
from lab2_lightning.models.reference import mlp_forward


def quietly(args: list[str]) -> tuple[Any, list[str]]:
    """``run(args)`` without a progress bar: what it returns, and the lines it printed."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = run([*args, "--progress_bar.enabled", "false"])
    return result, printed.getvalue().strip().splitlines()


def fit(root: Path, *flags: str, steps: int = 10) -> str:
    """A fit of ``steps`` steps into ``root``: its headline (the line before "results: ...")."""
    _, lines = quietly(["fit", *flags, "--trainer.max_steps", str(steps), "--trainer.default_root_dir", str(root)])
    return lines[-2]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One MLP fit of 20 steps, with the lab's split: its root folder and the headline it printed. The folder also
    holds variants of the data file, named by the tests (:func:`in_folder`)."""
    root = tmp_path_factory.mktemp("validate")
    headline = fit(root, "--config", "mlp", steps=20)
    assert headline.startswith("seed 0: training accuracy 0.")
    rows = [line.split(",") for line in packaged_iris().read_text().split()]
    header = "sepal_length,sepal_width,petal_length,petal_width,class\n"
    variants = {
        "header.csv": header + "".join(",".join(row) + "\n" for row in rows),  # the same rows, columns named
        "reordered.csv": "petal_length,sepal_length,sepal_width,petal_width,class\n"
        + "".join(",".join([row[2], row[0], row[1], row[3], row[4]]) + "\n" for row in rows),
        "renamed.csv": "".join(",".join(row).replace("Iris-setosa", "zsetosa") + "\n" for row in rows),
        "two_classes.csv": "".join(",".join(row) + "\n" for row in rows if row[4] != "Iris-virginica"),
        "three_columns.csv": "".join(",".join(row[1:]) + "\n" for row in rows),  # no header: by position
    }
    for name, text in variants.items():
        (root / name).write_text(text)
    return root, headline


def checkpoint(root: Path) -> Path:
    return root / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"


def in_folder(root: Path, flags: list[str]) -> list[str]:
    """``flags`` with the data files named by :func:`trained` as paths in ``root``."""
    return [str(root / flag) if flag.endswith(".csv") else flag for flag in flags]


def validate(root: Path, out: Path, *flags: str) -> tuple[dict[str, float], str]:
    """``validate`` of the fit's checkpoint (no logger, no bar, its config.yaml into ``out``): the metrics it returns
    and its last printed line."""
    metrics, lines = quietly(["validate", "--config", "mlp", "--ckpt_path", str(checkpoint(root)),
                              "--trainer.logger", "false", "--trainer.default_root_dir", str(out),
                              *in_folder(root, list(flags))])  # fmt: skip
    return metrics, lines[-1]


@pytest.mark.parametrize(
    "flags",
    [[], ["--trainer.precision", "64-true"], ["--data.path", "header.csv"], ["--data.val_size", "30"]],
    ids=["as-trained", "float64", "same-rows-with-header", "fewer-held-out-rows"],
)
def test_validate_prints_what_the_fit_measured(trained: tuple[Path, str], tmp_path: Path, flags: list[str]) -> None:
    """The same data (also widened to float64, or with a header naming the columns in their order): the fit's own
    numbers. A subset of the held-out rows is still held out: accepted, with its own numbers."""
    root, headline = trained
    metrics, line = validate(root, tmp_path, *flags)
    if "--data.val_size" in flags:  # the checkpoint's weights by hand on the 30 rows: the lab's forward pass
        held_out = IrisDataModule(preprocessing="lab", val_size=30)
        weights = torch.load(checkpoint(root), weights_only=True)["state_dict"]
        W1, W2, b1, b2 = (weights[name][0] for name in ("W1", "W2", "b1", "b2"))
        logits = mlp_forward(held_out.val_x.to(W1.dtype), W1, W2, b1, b2)
        accuracy = (logits.argmax(dim=1) == held_out.val_y).double().mean().item()
        assert metrics["val/acc"] == pytest.approx(accuracy, abs=1e-7) and len(held_out.val_y) == 30  # float32
        assert f"validation accuracy {accuracy:.3f}" in line
        return
    assert line == headline
    assert f"validation accuracy {metrics['val/acc']:.3f}" in headline


def test_validate_on_every_row(trained: tuple[Path, str], tmp_path: Path) -> None:
    """``data.val_size 0``: every row measured as a training row, no validation claimed."""
    _, line = validate(trained[0], tmp_path, "--data.val_size", "0")
    assert line.startswith("seed 0: training accuracy") and "validation" not in line


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--data.preprocessing", "standardise"], "was trained on features normalised with other statistics than"),
        (["--data.stats_rows", "train"], "was trained on features normalised with other statistics than"),
        (["--data.split_seed", "1"], "data.val_size 50 with data.split_seed 1 holds out rows that"),
        (["--data.val_size", "60"], "data.val_size 60 with data.split_seed 0 holds out rows that"),
        (["--data.path", "reordered.csv"], "was trained on the columns sepal_length, sepal_width, petal_length"),
        (["--data.path", "renamed.csv"], "tells apart Iris-setosa, Iris-versicolor, Iris-virginica (in this order)"),
        (["--data.path", "two_classes.csv"], "takes 4 features and tells apart 3 classes;"),
        (["--data.path", "three_columns.csv"], "takes 4 features and tells apart 3 classes;"),
    ],
    ids=[
        "preprocessing",
        "stats-rows",
        "split-seed",
        "more-held-out-rows",
        "column-order",
        "class-order",
        "class-count",
        "feature-count",
    ],
)
def test_data_the_weights_would_misread_are_refused(
    trained: tuple[Path, str], tmp_path: Path, cli_error: Callable[..., str], flags: list[str], message: str
) -> None:
    """Each of these used to print nothing, exit 0 and leave wrong accuracies in the returned metrics (the counts:
    a traceback); now one line, before any run folder is made."""
    root, _ = trained
    line = cli_error("validate", "--config", "mlp", "--ckpt_path", str(checkpoint(root)), *in_folder(root, flags))
    assert line.startswith(f"error: {checkpoint(root)} " if "holds out" not in message else "error: data.val_size")
    assert message in line
    assert not (tmp_path / "lightning_logs").exists()  # cli_error's --trainer.default_root_dir


@pytest.mark.parametrize(
    ("flags", "here"),
    [
        (["--data.split_seed", "1"], "data.val_size 50 with data.split_seed 1"),
        (["--data.val_size", "0"], "data.val_size 0"),
    ],
)
def test_statistics_of_the_training_rows_need_the_training_split(
    tmp_path: Path, cli_error: Callable[..., str], flags: list[str], here: str
) -> None:
    """``data.stats_rows train``: another split gives other statistics; the line names the split, not them."""
    root = tmp_path / "fit"
    fit(root, "--config", "mlp", "--data.stats_rows", "train")
    line = cli_error("validate", "--config", "mlp", "--data.stats_rows", "train", "--ckpt_path", str(checkpoint(root)),
                     *flags)  # fmt: skip
    assert line.startswith("error: with data.stats_rows train, the features are normalised with the training rows'")
    assert line.endswith(f"the split of its training, data.val_size 50 with data.split_seed 0 (here {here})")


def test_without_held_out_rows_the_split_seed_is_moot(tmp_path: Path) -> None:
    """``data.val_size 0``: every row is a training row whatever the seed, so another seed is no other split."""
    flags = ["--config", "mlp", "--data.stats_rows", "train", "--data.val_size", "0"]
    headline = fit(tmp_path, *flags)
    _, lines = quietly(["validate", *flags, "--data.split_seed", "5", "--ckpt_path", str(checkpoint(tmp_path)),
                        "--trainer.logger", "false", "--trainer.default_root_dir",
                        str(tmp_path / "validate")])  # fmt: skip
    assert lines[-1] == headline
    assert headline.startswith("seed 0: training accuracy") and "validation" not in headline


def test_checkpoint_by_name(trained: tuple[Path, str], cli_error: Callable[..., str]) -> None:
    """``last`` is the newest run's, as for ``fit``; ``best`` (a fit's earlier in the same process) is refused."""
    root, headline = trained
    _, lines = quietly(["validate", "--config", "mlp", "--ckpt_path", "last", "--trainer.default_root_dir", str(root),
                        "--trainer.logger", "false"])  # fmt: skip
    assert lines[-1] == headline
    line = cli_error("validate", "--config", "mlp", "--ckpt_path", "best")
    assert line.startswith("error: --ckpt_path best names the best checkpoint of a fit run earlier in the same")
    line = cli_error("validate", "--config", "mlp", "--ckpt_path", "last")  # cli_error's own, empty root
    assert line.startswith("error: --ckpt_path last: no LabMLP checkpoint") and line.endswith("to validate")


@pytest.mark.parametrize(
    ("command", "fit_config", "message"),
    [
        ("validate", "factorise", "error: LowRankFactorisation has nothing to validate (no validation_step)"),
        ("test", "mlp", "error: LabMLP has no test_step: the lab's data have a training and a validation split"),
    ],
)
def test_a_model_without_the_step_is_refused_before_any_folder(
    tmp_path: Path, cli_error: Callable[..., str], command: str, fit_config: str, message: str
) -> None:
    """Lightning said so too, but only after making the run's folder."""
    root = tmp_path / "fit"
    fit(root, "--config", fit_config)
    line = cli_error(command, "--config", fit_config, "--ckpt_path", str(checkpoint(root)))
    assert line.startswith(message)
    assert not (tmp_path / "lightning_logs").exists()  # cli_error's --trainer.default_root_dir


def test_hpc_without_its_checkpoints(cli_error: Callable[..., str]) -> None:
    line = cli_error("validate", "--config", "mlp", "--ckpt_path", "hpc")
    assert line.startswith("error: --ckpt_path hpc: no hpc_ckpt_N.ckpt in") and line.endswith("file, or last")


def test_a_data_file_is_not_a_checkpoint(trained: tuple[Path, str], cli_error: Callable[..., str]) -> None:
    line = cli_error("validate", "--config", "mlp", "--ckpt_path", str(trained[0] / "header.csv"))
    assert line.startswith(f"error: {trained[0] / 'header.csv'}: not a readable checkpoint")


def test_validate_without_a_checkpoint_says_so(tmp_path: Path) -> None:
    _, lines = quietly(["validate", "--config", "mlp", "--trainer.logger", "false", "--trainer.default_root_dir",
                        str(tmp_path)])  # fmt: skip
    assert lines[-2] == "no --ckpt_path: these are the weights as drawn, before any training"
    assert lines[-1].startswith("seed 0: training accuracy")
