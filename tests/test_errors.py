"""Bad input through the CLI: one line naming the problem, exit status 2, no traceback."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from lab2_lightning.data.table import packaged_iris

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


# ------------------------------------------------------------------------------------ what is wrong with the data

IRIS_HEADER = "sepal_length,sepal_width,petal_length,petal_width,species\n"


def iris_rows(column: int | None = None, value: str = "") -> list[list[str]]:
    """The packaged iris.data's rows as cells, with one feature column (0-based) set to ``value`` in every row."""
    rows = [line.split(",") for line in packaged_iris().read_text().split()]
    if column is not None:
        for row in rows:
            row[column] = value
    return rows


def joined(rows: list[list[str]], separator: str = ",") -> str:
    return "".join(separator.join(row) + "\n" for row in rows)


def test_a_constant_column_is_named_before_the_mlp_divides_by_its_variance(
    tmp_path: Path, configs: Path, cli_error: Callable[..., str]
) -> None:
    """The lab's ``(x - mean) / var`` divides a constant column by 0; 3.3 in every row has a variance of 1e-31 once
    its mean is rounded, which slipped past a check for 0 and trained on values of 1e30."""
    path = write(tmp_path, IRIS_HEADER + joined(iris_rows(1, "3.3")))
    line = cli_error("--config", str(configs / "mlp.yaml"), "--data.path", path)
    assert line == (
        f"error: {path}: feature column sepal_width is constant (3.3 in every row): preprocessing 'lab' divides "
        "each column by its variance, which is 0 there; drop it or use data.preprocessing centre"
    )
    assert not (tmp_path / "lightning_logs").exists()


@pytest.mark.parametrize("config", ["factorise.yaml", "mlp.yaml"])
@pytest.mark.parametrize("value", ["0", "2.5"])
def test_a_matrix_of_constant_columns_is_not_a_divergence(
    tmp_path: Path, configs: Path, cli_error: Callable[..., str], config: str, value: str
) -> None:
    """Centred, such a matrix is all zeros: the factorisation's yardsticks were 0/0, reported as a divergence."""
    rows = [[value] * 4 + [row[4]] for row in iris_rows()]
    path = write(tmp_path, joined(rows))
    line = cli_error("--config", str(configs / config), "--data.path", path)
    preprocessing = "centre" if config == "factorise.yaml" else "lab"
    assert line == (
        f"error: {path}: every feature column is constant (x1, x2, x3, x4): there is nothing to factorise or "
        f"learn (preprocessing '{preprocessing}' subtracts the column means, which leaves only zeros)"
    )
    assert not (tmp_path / "lightning_logs").exists()


def test_one_constant_column_is_fine_to_factorise(tmp_path: Path, configs: Path, run_cli: Callable[..., Any]) -> None:
    """Centring does not divide: a constant column becomes a column of zeros, and the rest is factorised."""
    path = write(tmp_path, joined(iris_rows(1, "3.3")))
    (run,) = run_cli("--config", str(configs / "factorise.yaml"), "--data.path", path, "--trainer.max_steps", "10")[
        "runs"
    ]
    assert run["svd_loss"] > 0 and run["relative_gap"] > 0


@pytest.mark.parametrize("separator", [";", "\t"])
@pytest.mark.parametrize("header", ["", IRIS_HEADER])
def test_semicolon_and_tab_separated_files_read_as_their_comma_twins(
    tmp_path: Path, configs: Path, run_cli: Callable[..., Any], separator: str, header: str
) -> None:
    """A spreadsheet's "CSV" in a decimal-comma locale uses ``;``; an export may use tabs. Read with commas, either
    was one column of text ("no feature columns besides the label column")."""
    rows = iris_rows()
    (tmp_path / "comma.csv").write_text(header + joined(rows))
    (tmp_path / "other.csv").write_text(header.replace(",", separator) + joined(rows, separator))
    options = ["--config", str(configs / "mlp.yaml"), "--trainer.max_steps", "10"]
    comma = run_cli(*options, "--data.path", str(tmp_path / "comma.csv"))
    other = run_cli(*options, "--data.path", str(tmp_path / "other.csv"))
    assert other["runs"] == comma["runs"]


def test_a_decimal_comma_is_named(tmp_path: Path, configs: Path, cli_error: Callable[..., str]) -> None:
    rows = [[cell.replace(".", ",") for cell in row] for row in iris_rows()]
    path = write(tmp_path, IRIS_HEADER.replace(",", ";") + joined(rows, ";"))
    line = cli_error("--config", str(configs / "mlp.yaml"), "--data.path", path)
    assert line == f"error: {path}, line 2, column 1: '5,1' is not a number (a decimal comma? write 5.1)"


# ------------------------------------------------------------------------------- where the Trainer is to run


def installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


BITSANDBYTES = """trainer:
  plugins:
    - class_path: lightning.pytorch.plugins.BitsandbytesPrecision
      init_args:
        mode: nf4
"""


@pytest.mark.parametrize(
    ("flags", "message", "skip"),
    [
        (
            ["--trainer.accelerator", "bogus"],
            "error: --trainer.accelerator bogus is not an accelerator: use one of auto, cpu, cuda, gpu, mps, tpu",
            False,
        ),
        (
            ["--trainer.accelerator", "tpu"],
            "error: --accelerator tpu was asked for, but Lightning finds no tpu device here; use --accelerator cpu "
            "or auto",
            installed("torch_xla"),
        ),
        (
            ["--accelerator", "mps"],
            "error: --accelerator mps was asked for, but Lightning finds no mps device here; use --accelerator cpu "
            "or auto",
            torch.backends.mps.is_available(),
        ),
        (
            ["--trainer.strategy", "bogus"],
            "error: --trainer.strategy bogus is not a strategy: use auto or one of ddp, ddp_spawn, ",
            False,
        ),
        (
            ["--trainer.strategy", "deepspeed"],
            "error: Lightning cannot set up this Trainer (--trainer.strategy deepspeed): To use the "
            "`DeepSpeedStrategy`, you must have DeepSpeed installed.",
            installed("deepspeed"),
        ),
        (
            ["--trainer.accelerator", "cpu", "--trainer.strategy", "fsdp"],
            "error: Lightning cannot set up this Trainer (--trainer.accelerator cpu, --trainer.strategy fsdp): The "
            "strategy `fsdp` requires a GPU accelerator",
            False,
        ),
        (
            ["--trainer.precision", "transformer-engine"],
            "error: Lightning cannot set up this Trainer (--trainer.precision transformer-engine): Requirement "
            "'transformer_engine",
            installed("transformer_engine"),
        ),
        (
            ["--config", "bitsandbytes.yaml"],
            "error: --trainer.plugins BitsandbytesPrecision: Requirement 'bitsandbytes' not met.",
            installed("bitsandbytes"),
        ),
        (
            ["--trainer.accelerator", "cpu", "--trainer.devices", "bogus"],
            "error: Lightning cannot set up this Trainer (--trainer.accelerator cpu, --trainer.devices bogus): "
            "`devices` selected with `CPUAccelerator` should be an int > 0.",
            False,
        ),
    ],
    ids=["accelerator", "tpu", "mps", "strategy", "deepspeed", "fsdp", "transformer-engine", "bitsandbytes", "devices"],
)
def test_device_options_lightning_cannot_use(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cli_error: Callable[..., str],
    flags: list[str],
    message: str,
    skip: bool,
) -> None:
    """An accelerator, strategy or precision plugin that Lightning does not know, or cannot use here: one line naming
    the option, not Lightning's ValueError, ModuleNotFoundError or TypeError traceback."""
    if skip:
        pytest.skip("this machine has it")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bitsandbytes.yaml").write_text(BITSANDBYTES)
    line = cli_error("--config", "mlp", *flags)
    assert line.startswith(message), line
    assert not (tmp_path / "lightning_logs").exists()
