"""Bad input through the CLI: one line naming the problem, exit status 2, no traceback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

IRIS_ROWS = "5.1,3.5,1.4,0.2,Iris-setosa\n4.9,3.0,1.4,0.2,Iris-setosa\n6.3,3.3,6.0,2.5,Iris-virginica\n"


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "data.csv"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("\n\n", "the file is empty"),
        (IRIS_ROWS + "5.0,abc,1.4,0.2,Iris-setosa\n", "line 4, column 2: 'abc' is not a number"),
        (IRIS_ROWS + "5.0,3.1,nan,0.2,Iris-setosa\n", "line 4, column 3: 'nan' is not a finite number"),
        (IRIS_ROWS + "5.0,3.1,1.2,-inf,Iris-setosa\n", "line 4, column 4: '-inf' is not a finite number"),
        (IRIS_ROWS + "5.0,,1.2,0.3,Iris-setosa\n", "line 4, column 2: empty cell"),
        (IRIS_ROWS + "5.0,3.1,1.2,0.3,Iris-setosa,9\n", "not a rectangular CSV"),
    ],
)
def test_bad_data_file(tmp_path: Path, configs: Path, cli_error: Callable[..., str], text: str, message: str) -> None:
    path = write(tmp_path, text)
    line = cli_error("--config", str(configs / "factorise.yaml"), "--data.path", path)
    assert line.startswith("error: ") and path in line and message in line


def test_missing_and_unreadable_file(tmp_path: Path, configs: Path, cli_error: Callable[..., str]) -> None:
    missing = str(tmp_path / "nope.csv")
    assert "nope.csv: no such file" in cli_error("--config", str(configs / "factorise.yaml"), "--data.path", missing)
    assert "not a regular file" in cli_error("--config", str(configs / "factorise.yaml"), "--data.path", str(tmp_path))
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00\x01garbage\xff\n")
    assert "cannot be read as UTF-8" in cli_error(
        "--config", str(configs / "factorise.yaml"), "--data.path", str(binary)
    )


def test_val_size_too_large(configs: Path, cli_error: Callable[..., str]) -> None:
    line = cli_error("--config", str(configs / "mlp.yaml"), "--data.val_size", "150")
    assert "data.val_size must be between 0 and 149" in line


def test_single_class_for_the_mlp(tmp_path: Path, configs: Path, cli_error: Callable[..., str]) -> None:
    path = write(tmp_path, "5.1,3.5,1.4,0.2,a\n4.9,3.0,1.3,0.1,a\n6.3,3.3,6.0,2.5,a\n")
    line = cli_error("--config", str(configs / "mlp.yaml"), "--data.path", path, "--data.val_size", "1")
    assert "at least two classes, got 1" in line


@pytest.mark.parametrize("rank", ["0", "5", "-1"])
def test_rank_out_of_range(configs: Path, cli_error: Callable[..., str], rank: str) -> None:
    line = cli_error("--config", str(configs / "factorise.yaml"), "--model.rank", rank)
    assert f"model.rank must be between 1 and min(rows, features) = 4, got {rank}" in line


def test_gpu_without_gpu(configs: Path, cli_error: Callable[..., str]) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    for flag in ("--accelerator", "--trainer.accelerator"):
        line = cli_error("--config", str(configs / "factorise.yaml"), flag, "gpu")
        assert "--accelerator gpu was asked for, but PyTorch sees no CUDA GPU" in line
