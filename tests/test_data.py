"""Reading data files (CSV in its common dialects, .npy, .pt), preprocessing, and the errors a user can fix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import IRIS_FEATURES, QUIET, fit, plain_factors, summed_squared_error
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from lab2_lightning.data import SyntheticDataModule, TableDataModule
from lab2_lightning.data.reading import packaged_iris, read_data
from lab2_lightning.errors import LabError

SPECIES = {"Iris-setosa": "0", "Iris-versicolor": "1", "Iris-virginica": "2"}


def iris_rows() -> list[list[str]]:
    """The packaged iris.data's cells, row by row."""
    text = packaged_iris().read_text()
    return [line.split(",") for line in text.splitlines() if line.strip()]


def write_rows(path: Path, rows: list[list[str]], sep: str = ",", header: list[str] | None = None) -> Path:
    lines = ([sep.join(header)] if header else []) + [sep.join(row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def iris() -> TableDataModule:
    """The packaged Iris, unnormalised."""
    return TableDataModule(preprocessing="none")


def test_a_csv_with_header_and_shuffled_columns(tmp_path: Path, iris: TableDataModule) -> None:
    """A header names the columns in any order; the label column is given by its index; the values are Iris's."""
    names = [*IRIS_FEATURES, "species"]
    order = [2, 0, 4, 3, 1]  # petal_length, sepal_length, species, petal_width, sepal_width
    rows = [[row[j] for j in order] for row in iris_rows()]
    path = write_rows(tmp_path / "shuffled.csv", rows, header=[names[j] for j in order])
    data = TableDataModule(path=str(path), label_column=2, preprocessing="none")
    assert data.feature_names == ["petal_length", "sepal_length", "petal_width", "sepal_width"]
    back = [data.feature_names.index(name) for name in IRIS_FEATURES]
    assert torch.equal(data.train_x[:, back], iris.train_x)
    assert torch.equal(data.train_y, iris.train_y)
    assert data.class_names == iris.class_names


def test_a_semicolon_separated_csv(tmp_path: Path, iris: TableDataModule) -> None:
    """A spreadsheet's ``;``-separated export reads as the comma-separated file does."""
    path = write_rows(tmp_path / "semicolons.csv", iris_rows(), sep=";")
    data = TableDataModule(path=str(path), preprocessing="none")
    assert torch.equal(data.train_x, iris.train_x)
    assert torch.equal(data.train_y, iris.train_y)


@pytest.mark.parametrize(("encoding", "newline"), [("utf-8-sig", "\n"), ("utf-8", "\r\n")])
def test_a_spreadsheet_export_with_bom_or_crlf(
    tmp_path: Path, iris: TableDataModule, encoding: str, newline: str
) -> None:
    """A header written with a byte-order mark (Excel's UTF-8 CSV) or Windows line ends reads as the plain file,
    with clean column names."""
    lines = [",".join([*IRIS_FEATURES, "species"]), *(",".join(row) for row in iris_rows())]
    path = tmp_path / "export.csv"
    path.write_bytes((newline.join(lines) + newline).encode(encoding))
    data = TableDataModule(path=str(path), preprocessing="none")
    assert data.feature_names == IRIS_FEATURES
    assert torch.equal(data.train_x, iris.train_x)
    assert torch.equal(data.train_y, iris.train_y)


def test_numeric_labels_with_label_column(tmp_path: Path, iris: TableDataModule) -> None:
    """Numeric class labels in the first column, named by ``label_column 0``, are labels, not a feature."""
    rows = [[SPECIES[row[4]], *row[:4]] for row in iris_rows()]
    path = write_rows(tmp_path / "numeric.csv", rows)
    data = TableDataModule(path=str(path), label_column=0, preprocessing="none")
    assert data.n_features == 4
    assert data.class_names == ["0", "1", "2"]
    assert torch.equal(data.train_x, iris.train_x)
    assert torch.equal(data.train_y, iris.train_y)


def test_numeric_labels_without_label_column_are_a_feature(tmp_path: Path) -> None:
    """``auto`` takes only a non-numeric last column as labels: a numeric one stays a feature."""
    rows = [[*row[:4], SPECIES[row[4]]] for row in iris_rows()]
    data = TableDataModule(path=str(write_rows(tmp_path / "numeric.csv", rows)), preprocessing="none")
    assert data.n_features == 5
    assert data.class_names == []


@pytest.mark.parametrize("suffix", [".npy", ".pt"])
def test_npy_and_pt_matrices(tmp_path: Path, iris: TableDataModule, suffix: str) -> None:
    """A .npy or .pt matrix reads as its values, with no labels."""
    path = tmp_path / f"matrix{suffix}"
    if suffix == ".npy":
        np.save(path, iris.train_x.numpy())
    else:
        torch.save(iris.train_x.clone(), path)
    data = TableDataModule(path=str(path), preprocessing="none")
    assert torch.equal(data.train_x, iris.train_x)
    assert data.class_names == []


def test_a_fit_on_an_npy_matrix_equals_the_plain_loop(tmp_path: Path, iris: TableDataModule) -> None:
    """``fit --config factorise --data.path A.npy`` factorises the file's matrix: Iris's features give the plain loop's
    numbers on Iris."""
    np.save(tmp_path / "A.npy", iris.train_x.numpy())
    results = fit("--config", "factorise", "--data.path", "A.npy", "--trainer.max_steps", "50")
    U, V = plain_factors(0, 2, steps=50)
    assert results["runs"][0]["gd_loss"] == summed_squared_error(U, V)


@pytest.mark.parametrize(
    ("row", "column", "cell", "words"),
    [(4, 2, "abc", ["'abc'", "not a number"]), (5, 3, "", ["empty"]), (7, 1, "5,1", ["5.1"])],
)
def test_a_bad_cell_is_named_by_file_line_and_column(
    fails: Callable[..., str], tmp_path: Path, row: int, column: int, cell: str, words: list[str]
) -> None:
    """A non-numeric, empty or decimal-comma cell exits 2 with one line naming the file, its line and column."""
    rows = iris_rows()[:10]
    rows[row - 1][column - 1] = f'"{cell}"' if "," in cell else cell
    write_rows(tmp_path / "bad.csv", rows)
    line = fails("fit", "--config", "factorise", "--data.path", "bad.csv", *QUIET)
    assert "bad.csv" in line
    assert f"line {row}" in line
    assert f"column {column}" in line
    for word in words:
        assert word in line
    assert not (tmp_path / "lightning_logs" / "version_0" / "checkpoints").exists()


def test_a_missing_file_is_named(fails: Callable[..., str]) -> None:
    """A data file that does not exist exits 2 naming it."""
    line = fails("fit", "--config", "factorise", "--data.path", "nowhere.csv")
    assert "nowhere.csv" in line


def test_a_ragged_csv_is_refused(fails: Callable[..., str], tmp_path: Path) -> None:
    """A row with more cells than the others exits 2 naming the file."""
    rows = iris_rows()[:10]
    rows[6].append("9.9")
    write_rows(tmp_path / "ragged.csv", rows)
    line = fails("fit", "--config", "factorise", "--data.path", "ragged.csv")
    assert "ragged.csv" in line


def test_divide_by_variance_divides_by_the_variance() -> None:
    """``preprocessing divide_by_variance`` is (x - mean) / var (the unbiased variance), not the std."""
    raw = torch.from_numpy(read_data(packaged_iris()).features)
    data = TableDataModule(preprocessing="divide_by_variance")
    assert torch.allclose(data.train_x, (raw - raw.mean(dim=0)) / raw.var(dim=0), rtol=1e-15, atol=0)
    assert not torch.allclose(data.train_x, (raw - raw.mean(dim=0)) / raw.std(dim=0))
    standardised = TableDataModule(preprocessing="standardise")
    assert torch.allclose(standardised.train_x, (raw - raw.mean(dim=0)) / raw.std(dim=0), rtol=1e-15, atol=0)


def test_stats_rows_train_uses_only_the_training_rows() -> None:
    """``stats_rows train`` takes the mean and spread from the training rows only."""
    raw = torch.from_numpy(read_data(packaged_iris()).features)
    order = torch.from_numpy(np.random.RandomState(0).permutation(150))
    train = raw[order[:100]]
    data = TableDataModule(preprocessing="divide_by_variance", stats_rows="train", val_size=50)
    assert torch.allclose(data.train_x, (train - train.mean(dim=0)) / train.var(dim=0), rtol=1e-15, atol=0)


def test_centre_centres() -> None:
    """``preprocessing centre`` (Exercise 1) subtracts the column means and nothing else."""
    raw = torch.from_numpy(read_data(packaged_iris()).features)
    data = TableDataModule(preprocessing="centre")
    assert torch.equal(data.train_x, raw - raw.mean(dim=0))
    assert data.train_x.is_contiguous()
    assert data.train_x.dtype == torch.float64


def test_a_constant_column_is_refused_when_divided_by_its_spread(fails: Callable[..., str], tmp_path: Path) -> None:
    """A constant feature column with divide_by_variance exits 2 naming the file and the column; centring keeps it."""
    rows = iris_rows()
    for row in rows:
        row[1] = "3.0"
    write_rows(tmp_path / "constant.csv", rows)
    line = fails("fit", "--config", "mlp", "--data.path", "constant.csv")
    assert "constant.csv" in line
    assert "x2" in line
    assert "constant" in line
    centred = TableDataModule(path=str(tmp_path / "constant.csv"), preprocessing="centre")
    assert torch.equal(centred.train_x[:, 1], torch.zeros(150, dtype=torch.float64))


def test_every_column_constant_is_refused(tmp_path: Path) -> None:
    """A matrix whose every column is constant has nothing to factorise: refused naming the file."""
    path = tmp_path / "flat.csv"
    path.write_text("1,2\n1,2\n1,2\n")
    with pytest.raises(LabError, match=r"flat\.csv"):
        TableDataModule(path=str(path))


def test_a_too_large_val_size_is_refused(fails: Callable[..., str]) -> None:
    """``--data.val_size`` of all 150 rows or more exits 2 naming val_size and the row count."""
    line = fails("fit", "--config", "mlp", "--data.val_size", "150")
    assert "val_size" in line
    assert "150" in line


def test_the_synthetic_data_module() -> None:
    """The synthetic matrix has the asked shape, is centred, has the asked rank without noise, and depends only on
    its own seed."""
    data = SyntheticDataModule(rows=30, cols=7, rank=3, noise=0.0, seed=5)
    assert data.train_x.shape == (30, 7)
    assert (data.n_rows, data.n_features) == (30, 7)
    assert len(data.val_x) == 0
    assert torch.allclose(data.train_x.mean(dim=0), torch.zeros(7, dtype=torch.float64), atol=1e-12)
    singular_values = torch.linalg.svdvals(data.train_x)
    assert singular_values[2] > 1e-3
    assert singular_values[3] < 1e-10
    torch.manual_seed(123)
    again = SyntheticDataModule(rows=30, cols=7, rank=3, noise=0.0, seed=5)
    assert torch.equal(again.train_x, data.train_x)
    assert not torch.equal(SyntheticDataModule(rows=30, cols=7, rank=3, noise=0.0, seed=6).train_x, data.train_x)


def test_a_synthetic_rank_above_the_matrix_is_refused() -> None:
    """A signal rank larger than the matrix allows is refused naming data.rank."""
    with pytest.raises(LabError, match="rank"):
        SyntheticDataModule(rows=5, cols=3, rank=4)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    matrix=arrays(
        np.float64,
        st.tuples(st.integers(1, 6), st.integers(1, 5)),
        elements=st.floats(allow_nan=False, allow_infinity=False, width=64),
    ),
    sep=st.sampled_from([",", ";", "\t"]),
)
def test_reading_random_numeric_csvs_round_trips_their_values(tmp_path: Path, matrix: np.ndarray, sep: str) -> None:
    """Any finite float64 matrix written as text (repr, the shortest exact form) reads back bit for bit, with any of
    the accepted separators."""
    path = write_rows(tmp_path / "random.csv", [[repr(float(v)) for v in row] for row in matrix], sep=sep)
    table = read_data(path, label_column=None)
    assert table.features.shape == matrix.shape
    assert np.array_equal(table.features, matrix)
    assert table.lines.tolist() == list(range(1, len(matrix) + 1))


def test_a_header_naming_a_column_twice_is_refused(fails: Callable[..., str], tmp_path: Path) -> None:
    """A header with a repeated name could never be matched by name at prediction: refused at once, line 1."""
    (tmp_path / "twice.csv").write_text("a,a,c,d,species\n1,2,3,4,x\n2,3,4,5,y\n3,4,5,6,x\n")
    line = fails("fit", "--config", "mlp", "--data.path", "twice.csv", "--data.val_size", "0", *QUIET)
    assert "twice.csv, line 1" in line and "'a'" in line


def test_values_too_large_for_the_precision_are_refused(fails: Callable[..., str], tmp_path: Path) -> None:
    """A float64 matrix whose values overflow float32 is refused in one line under 32-true, not trained into NaN."""
    A = np.random.default_rng(0).standard_normal((20, 5)) * 1e300
    np.save(tmp_path / "big.npy", A)
    line = fails(
        "fit", "--config", "factorise", "--data.path", str(tmp_path / "big.npy"), "--data.label_column", "null",
        "--data.preprocessing", "none", "--trainer.precision", "32-true", *QUIET,
    )  # fmt: skip
    assert "do not fit in torch.float32" in line
