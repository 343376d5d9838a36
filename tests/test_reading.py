"""Reading files into arrays: values bit for bit, missing entries, memory maps, triples of entries, and messages that
name the file, line and column. The quick numeric reader is checked against the cell-by-cell one it stands in for."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lab2_lightning.data import reading
from lab2_lightning.data.reading import Table, read_data, read_entries, read_matrix, read_table
from lab2_lightning.errors import LabError

OPTION = r"the MLP needs every entry; to factorise the observed ones, pass --data\.allow_missing true"


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode())
    return path


def csv_text(cells: list[list[str]], sep: str = ",") -> str:
    return "".join(sep.join(row) + "\n" for row in cells)


def oracle(cells: list[list[str]]) -> np.ndarray:
    """The cells as Python's ``float`` reads them, NaN for a missing entry."""
    missing = set(reading.MISSING)
    return np.array([[np.nan if cell.strip() in missing else float(cell) for cell in row] for row in cells])


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(np.asarray(a, np.float64).view(np.int64), b.view(np.int64))


def quick(path: Path, label_column: reading.LabelColumn = "auto", allow_missing: bool = False) -> Table | None:
    """The quick reader's table, or None where it hands the file to the cell-by-cell reader."""
    sep, first_line, rows = reading._sample(path)
    return reading._read_numbers(path, sep, first_line, rows, label_column, allow_missing)


def assert_same_table(a: Table, b: Table) -> None:
    assert same_bits(np.where(np.isnan(a.features), 0, a.features), np.where(np.isnan(b.features), 0, b.features))
    assert np.array_equal(np.isnan(a.features), np.isnan(b.features))
    assert (a.labels, a.feature_names, a.path, a.has_header) == (b.labels, b.feature_names, b.path, b.has_header)
    assert a.lines.dtype == b.lines.dtype == np.int64
    assert np.array_equal(a.lines, b.lines)


def both_readers(path: Path, label_column: reading.LabelColumn = "auto", allow_missing: bool = False) -> Table:
    """The table, after checking that the quick reader read it and agrees with the cell-by-cell one."""
    table = quick(path, label_column, allow_missing)
    assert table is not None
    sep, first_line, _ = reading._sample(path)
    slow = reading._read_cell_by_cell(path, sep, first_line, label_column, allow_missing, reading.ALLOW_MISSING)
    assert_same_table(table, slow)
    table = read_table(path, label_column, allow_missing)
    assert_same_table(table, slow)
    return table


# ----------------------------------------------------------------------------------------------------------------
# CSV values and layout


@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_random_values_read_as_python_float_reads_them(tmp_path: Path, sep: str) -> None:
    """Numbers in many notations (shortest repr, %.6g, 17 digits, exponents, integers, extremes) read bit for bit
    as Python's ``float`` reads their text."""
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2**63, size=400, dtype=np.int64).view(np.float64)
    values = np.concatenate([bits[np.isfinite(bits)], rng.standard_normal(200) * 10.0 ** rng.integers(-300, 300, 200)])
    values = np.concatenate([values, [5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, -0.0, 0.1, 1e23]])
    formats = [repr, "{:.6g}".format, "{:.17g}".format, "{:.3e}".format, lambda v: str(int(v % 1000))]
    cells = [[formats[j % len(formats)](float(v)) for j, v in enumerate(values[i : i + 8])] for i in range(0, 400, 8)]
    table = both_readers(write(tmp_path / "values.csv", csv_text(cells, sep)), label_column=None)
    assert same_bits(table.features, oracle(cells))
    assert np.array_equal(table.lines, np.arange(1, len(cells) + 1))
    assert table.features.dtype == np.float64 and table.features.flags.c_contiguous


def test_iris_reads_as_before() -> None:
    """The packaged Iris: float64 values with one decimal, species as labels, lines 1 to 150 (its two trailing
    blank lines skipped), the file unchanged."""
    path = reading.packaged_iris()
    table = both_readers(path)
    cells = [line.split(",")[:4] for line in path.read_text().splitlines() if line]
    assert same_bits(table.features, oracle(cells))
    assert table.labels[:1] == ["Iris-setosa"] and len(set(table.labels)) == 3
    assert np.array_equal(table.lines, np.arange(1, 151))
    assert reading.file_sha256(path) == "6f608b71a7317216319b4d27b4d9bc84e6abd734eda7872b71a458569e2656c0"


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("\n\na,b,c\n\n1,2,3\n \n4,5,6\n\n\n", [5, 7]),  # blank lines before and after the header, and at the end
        ("a,b,c\r\n1,2,3\r\n\r\n4,5,6\r\n", [2, 4]),  # Windows line ends
        ("\ufeffa,b,c\n1,2,3\n,,\n4,5,6\n", [2, 4]),  # a byte-order mark; a line of empty cells is blank too
        ("1,2,3\n\n\n4,5,6\n", [1, 4]),
    ],
)
def test_line_numbers_with_blank_lines_and_headers(tmp_path: Path, text: str, lines: list[int]) -> None:
    """Blank lines are skipped and the rows keep the numbers of their lines, header or not."""
    table = read_table(write(tmp_path / "blanks.csv", text), label_column=None)
    assert np.array_equal(table.lines, lines)
    assert np.array_equal(table.features, [[1, 2, 3], [4, 5, 6]])
    assert table.feature_names == (["a", "b", "c"] if table.has_header else ["x1", "x2", "x3"])
    if " " not in text:  # pandas takes a line of spaces for text: the cell-by-cell reader reads that file
        both_readers(tmp_path / "blanks.csv", label_column=None)


@pytest.mark.parametrize(
    ("text", "label_column", "labels", "names"),
    [
        ("a,b,y\n1,2,x\n3,4,NA\n", "auto", ["x", "NA"], ["a", "b"]),  # NA is a label, not a missing entry
        ("y;a\n1;2\n0;4\n", 0, ["1", "0"], ["a"]),
        ("1,2, cat \n3,4,dog\n", -1, ["cat", "dog"], ["x1", "x2"]),
        ("1,2,3\n4,5,6\n", "auto", None, ["x1", "x2", "x3"]),  # a numeric last column is a feature
    ],
)
def test_label_columns(
    tmp_path: Path, text: str, label_column: reading.LabelColumn, labels: list[str] | None, names: list[str]
) -> None:
    table = read_table(write(tmp_path / "labels.csv", text), label_column)
    assert table.labels == labels
    assert table.feature_names == names


def test_a_judgement_from_the_first_lines_is_checked_on_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Separator, header and label column are judged from the first lines only (3 here); a last column whose
    later cells are numbers is then no label column, and its text is refused as the cell-by-cell reader does."""
    monkeypatch.setattr(reading, "SAMPLE_CHARS", 1)
    rows = [["1", "2", "x"]] * 5 + [["3", "4", "5"]]
    path = write(tmp_path / "late.csv", csv_text(rows))
    with pytest.raises(LabError, match=r"late\.csv, line 1, column 3: 'x' is not a number"):
        read_table(path)
    assert quick(path) is None


def outcome(read: Callable[[], Table]) -> tuple:
    """What a read gives, comparably: the table's fields (NaN as a set bit pattern), or the error message."""
    try:
        table = read()
    except LabError as err:
        return ("error", str(err))
    features = np.where(np.isnan(table.features), -7.25, table.features)
    return features.shape, features.tobytes(), table.labels, table.feature_names, table.lines.tolist(), table.has_header


CELLS = ["1", "-2.5", "3e-2", "", "nan", "NA", "x", "inf", " 4 ", "5,1", "True", "1_0"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lines=st.lists(
        st.one_of(st.lists(st.sampled_from(CELLS), min_size=1, max_size=4), st.sampled_from(["", "  "])), max_size=7
    ),
    sep=st.sampled_from([",", ";", "\t"]),
    label_column=st.sampled_from(["auto", None, 0, -1]),
    allow_missing=st.booleans(),
)
def test_the_quick_reader_agrees_with_the_cell_by_cell_one(
    tmp_path: Path, lines: list[list[str] | str], sep: str, label_column: reading.LabelColumn, allow_missing: bool
) -> None:
    """On any small file (ragged rows, blank lines, missing and bad cells), read_table gives the table, or the
    message, of the cell-by-cell reader."""
    text = "".join(
        (sep.join(f'"{c}"' if "," in c else c for c in line) if isinstance(line, list) else line) + "\n"
        for line in lines
    )
    path = write(tmp_path / "any.csv", text)

    def cell_by_cell() -> Table:
        sep_seen, first_line, _ = reading._sample(path)
        return reading._read_cell_by_cell(
            path, sep_seen, first_line, label_column, allow_missing, reading.ALLOW_MISSING
        )

    assert outcome(lambda: read_table(path, label_column, allow_missing)) == outcome(cell_by_cell)


# ----------------------------------------------------------------------------------------------------------------
# Missing entries


@pytest.mark.parametrize("sep", [",", ";"])
def test_missing_entries_are_nan_exactly_where_the_cells_were(tmp_path: Path, sep: str) -> None:
    """With allow_missing, empty, NaN, nan and NA cells are NaN, every other cell its number; a row missing every
    entry stays (it is no blank line)."""
    rng = np.random.default_rng(3)
    cells = [[f"{v:.6g}" for v in row] for row in rng.standard_normal((40, 6))]
    mask = rng.random((40, 6)) < 0.3
    mask[7] = True
    for (i, j), word in zip(np.argwhere(mask), np.resize(reading.MISSING, mask.sum()), strict=True):
        cells[i][j] = word
    path = write(tmp_path / "holes.csv", "h1;h2;h3;h4;h5;h6\n".replace(";", sep) + csv_text(cells, sep))
    table = both_readers(path, label_column=None, allow_missing=True)
    assert np.array_equal(np.isnan(table.features), mask)
    assert same_bits(table.features[~mask], oracle(cells)[~mask])
    assert np.array_equal(table.lines, np.arange(2, 42))


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ("1,2\n3,\n", "line 2, column 2", "empty cell"),
        ("1,2\n\n3,4\nNA,5\n", "line 4, column 1", "'NA'"),
        ("a,b\n1,nan\n", "line 2, column 2", "'nan'"),
        ("1,2,3\n4,5\n", "line 2, column 3", "empty cell"),  # a short row ends in missing entries
    ],
)
def test_a_missing_entry_is_refused_naming_the_option(tmp_path: Path, text: str, where: str, what: str) -> None:
    path = write(tmp_path / "holes.csv", text)
    with pytest.raises(LabError, match=rf"holes\.csv, {where}: {what} \(a missing entry: {OPTION}"):
        read_data(path, label_column=None)
    assert np.isnan(read_data(path, label_column=None, allow_missing=True).features).sum() == 1


@pytest.mark.parametrize("cell", ["NA", ""])
def test_a_last_column_with_nothing_in_it_is_no_labels(tmp_path: Path, cell: str) -> None:
    """A last column all of whose cells are missing entries (or a separator at the end of every line) is a column
    of missing entries, not labels."""
    path = write(tmp_path / "gaps.csv", f"1,2,{cell}\n4,5,{cell}\n")
    table = read_data(path, allow_missing=True)
    assert table.labels is None and table.features.shape == (2, 3) and np.isnan(table.features[:, 2]).all()


def test_the_first_missing_entry_in_reading_order_is_named(tmp_path: Path) -> None:
    """Line by line, then column by column: the gap on line 2 is named, not the one in an earlier column below."""
    path = write(tmp_path / "holes.csv", "1,2\n3,\n,4\n")
    with pytest.raises(LabError, match=r"holes\.csv, line 2, column 2: empty cell"):
        read_data(path, label_column=None)


@pytest.mark.parametrize("allow_missing", [False, True])
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1,2\n3,inf\n", r"line 2, column 2: 'inf' is not a finite number"),
        ("1,2\n3,1e999\n", r"line 2, column 2: '1e999' is not a finite number"),
        ("1,2\n3,abc\n", r"line 2, column 2: 'abc' is not a number"),
        ("1,2,x\n3,4,\n", r"line 2, column 3: empty label"),
        ("1,2\n3,4,5\n", r"not a rectangular CSV \(Expected 2 fields in line 2, saw 3\)"),
        ("a,a\n1,2\n", r"line 1: the header names 'a' twice"),
    ],
)
def test_other_bad_cells_are_refused_either_way(tmp_path: Path, text: str, message: str, allow_missing: bool) -> None:
    with pytest.raises(LabError, match=rf"bad\.csv(, |: ){message}"):
        read_table(write(tmp_path / "bad.csv", text), allow_missing=allow_missing)


# ----------------------------------------------------------------------------------------------------------------
# Matrix files


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_an_npy_matrix_is_its_memory_map(tmp_path: Path, dtype: type) -> None:
    """A float32 or float64 .npy comes back memory-mapped copy-on-write, in its own dtype: no copy, and writing to
    it (the DataModule normalises in place) leaves the file as it was."""
    matrix = np.random.default_rng(0).standard_normal((50, 7)).astype(dtype)
    np.save(tmp_path / "m.npy", matrix)
    table = read_matrix(tmp_path / "m.npy")
    assert isinstance(table.features, np.memmap)
    assert table.features.dtype == dtype and table.features.flags.writeable
    assert np.array_equal(table.features, matrix)
    table.features[0, 0] += 1
    assert np.array_equal(np.load(tmp_path / "m.npy"), matrix)
    assert np.array_equal(table.lines, np.arange(1, 51)) and table.lines.dtype == np.int64


@pytest.mark.parametrize(
    ("dtype", "widened"),
    [
        (np.float16, np.float32),
        (np.int8, np.float32),
        (np.uint16, np.float32),
        (np.int32, np.float64),
        (np.longdouble, np.float64),
        (">f4", np.float32),  # in the machine's byte order, which torch needs
    ],
)
def test_other_numbers_widen_exactly(tmp_path: Path, dtype: type, widened: type) -> None:
    matrix = np.arange(-6, 18).reshape(4, 6).astype(dtype)
    np.save(tmp_path / "m.npy", matrix)
    features = read_matrix(tmp_path / "m.npy").features
    assert features.dtype == widened and features.dtype.isnative
    assert np.array_equal(features, matrix.astype(np.float64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_a_pt_matrix_keeps_its_float_type(tmp_path: Path, dtype: torch.dtype) -> None:
    """float32 and float64 tensors keep their type; bfloat16, which numpy lacks, becomes float32 (exactly)."""
    tensor = torch.randn(5, 3).to(dtype)
    torch.save(tensor, tmp_path / "m.pt")
    features = torch.from_numpy(read_data(tmp_path / "m.pt").features)
    assert features.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert torch.equal(features, tensor.to(features.dtype))


@pytest.mark.parametrize("suffix", [".npy", ".pt"])
def test_nan_in_a_matrix_is_a_missing_entry(tmp_path: Path, suffix: str) -> None:
    matrix = np.ones((4, 3), dtype=np.float32)
    matrix[2, 1] = np.nan
    path = tmp_path / f"m{suffix}"
    np.save(path, matrix) if suffix == ".npy" else torch.save(torch.from_numpy(matrix), path)
    with pytest.raises(LabError, match=rf"m\{suffix}, row 3, column 2: nan \(a missing entry: {OPTION}"):
        read_matrix(path)
    assert np.array_equal(np.isnan(read_matrix(path, allow_missing=True).features), np.isnan(matrix))
    matrix[0, 0] = np.inf
    np.save(path, matrix) if suffix == ".npy" else torch.save(torch.from_numpy(matrix), path)
    with pytest.raises(LabError, match=r"row 1, column 1: inf is not a finite number"):
        read_matrix(path, allow_missing=True)


def test_the_finiteness_check_works_block_by_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad value in a later block is found at its own row."""
    monkeypatch.setattr(reading, "CHECK_BLOCK", 10)
    matrix = np.zeros((30, 4))
    matrix[23, 2] = -np.inf
    np.save(tmp_path / "m.npy", matrix)
    with pytest.raises(LabError, match=r"row 24, column 3: -inf"):
        read_matrix(tmp_path / "m.npy")


@pytest.mark.parametrize(
    ("save", "message"),
    [
        (lambda p: np.save(p, np.zeros(3)), r"expected a non-empty 2-D matrix, got shape \(3,\)"),
        (lambda p: np.save(p, np.zeros((2, 2), dtype=bool)), r"expected real numbers, got dtype bool"),
        (lambda p: np.save(p, np.zeros((2, 2), dtype=complex)), r"expected real numbers, got dtype complex128"),
        # numpy counts a time span as an integer
        (lambda p: np.save(p, np.zeros((2, 2), dtype="m8[s]")), r"expected real numbers, got dtype timedelta64\[s\]"),
        (lambda p: p.write_bytes(b"not numpy"), r"not a readable \.npy matrix"),
    ],
)
def test_bad_matrix_files_are_refused(tmp_path: Path, save: Callable[[Path], None], message: str) -> None:
    path = tmp_path / "m.npy"
    save(path)
    with pytest.raises(LabError, match=rf"m\.npy: {message}"):
        read_matrix(path)


# ----------------------------------------------------------------------------------------------------------------
# Entries


def entries_fixture(rng: np.random.Generator, n: int = 60) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    flat = rng.choice(20 * 9, size=n, replace=False)
    return flat // 9, flat % 9, rng.standard_normal(n)


def save_entries(path: Path, rows: np.ndarray, cols: np.ndarray, values: np.ndarray, sep: str = ",") -> Path:
    if path.suffix == ".npz":
        np.savez(path, row=rows, col=cols, value=values)
    elif path.suffix == ".pt":
        torch.save(
            {"row": torch.from_numpy(rows), "col": torch.from_numpy(cols), "value": torch.from_numpy(values)}, path
        )
    else:
        text = "".join(f"{r}{sep}{c}{sep}{v!r}\n" for r, c, v in zip(rows, cols, values.tolist(), strict=True))
        write(path, f"row{sep}column{sep}value\n" + text)
    return path


@pytest.mark.parametrize("name", ["e.csv", "e.tsv", "e.npz", "e.pt"])
def test_entries_from_any_format_agree(tmp_path: Path, name: str) -> None:
    rows, cols, values = entries_fixture(np.random.default_rng(1))
    entries = read_entries(save_entries(tmp_path / name, rows, cols, values, sep="\t" if name == "e.tsv" else ","))
    assert np.array_equal(entries.rows, rows) and np.array_equal(entries.cols, cols)
    assert entries.rows.dtype == entries.cols.dtype == np.int64
    assert same_bits(entries.values, values)
    assert entries.shape == (rows.max() + 1, cols.max() + 1)


def test_a_header_names_the_entries_columns_in_any_order(tmp_path: Path) -> None:
    """Under a header the columns are taken by name (col or column, any case): never a matrix transposed unseen."""
    entries = read_entries(write(tmp_path / "e.csv", "Column,value,ROW\n1,2.5,0\n0,7,3\n"))
    assert (entries.rows.tolist(), entries.cols.tolist(), entries.values.tolist()) == ([0, 3], [1, 0], [2.5, 7.0])
    assert entries.shape == (4, 2)


def test_entries_keep_float32_values_and_take_whole_float_indices(tmp_path: Path) -> None:
    np.savez(tmp_path / "e.npz", row=np.array([0.0, 2.0]), col=np.array([1, 0], np.int16), value=np.ones(2, np.float32))
    entries = read_entries(tmp_path / "e.npz")
    assert entries.values.dtype == np.float32
    assert (entries.rows.tolist(), entries.cols.tolist(), entries.shape) == ([0, 2], [1, 0], (3, 2))
    assert read_entries(write(tmp_path / "e.csv", "3.0;1;2.5\n\n0;0;1\n")).rows.tolist() == [3, 0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("row,col,value\n0,0,1\n1,2,3\n\n0,0,5\n", r"e\.csv, line 2 and line 5: entry \(0, 0\) is listed twice"),
        ("user,item,rating\n0,0,1\n", r"e\.csv: the header names 'user', 'item', 'rating'; a CSV of entries names"),
        ("value,row,col\n1,-1,0\n", r"e\.csv, line 2, column 2: -1 is not an index"),
        ("0,0,1\n-1,2,3\n", r"e\.csv, line 2, column 1: -1 is not an index"),
        ("0,0,1\n1,2.5,3\n", r"e\.csv, line 2, column 2: 2\.5 is not an index"),
        ("0,0,1\n1,4294967296,3\n", r"e\.csv, line 2, column 2: 4294967296 is not an index"),
        ("0,0,1\n1,1,\n", r"e\.csv, line 2, column 3: empty cell \(a missing entry: a file of entries lists"),
        ("0,0,1\n1,1,nan\n", r"e\.csv, line 2, column 3: 'nan' \(a missing entry: .*omit it"),
        ("0,0,1\n1,x,1\n", r"e\.csv, line 2, column 2: 'x' is not a number"),
        ("0,0\n1,1\n", r"e\.csv: 2 columns; a CSV of entries has 3"),
        ("", r"e\.csv: the file is empty"),
    ],
)
def test_bad_csv_entries_are_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(LabError, match=message):
        read_entries(write(tmp_path / "e.csv", text))


def test_bad_array_entries_are_refused(tmp_path: Path) -> None:
    def refused(message: str, **arrays: np.ndarray) -> None:
        np.savez(tmp_path / "e.npz", **arrays)
        with pytest.raises(LabError, match=rf"e\.npz(: |, ){message}"):
            read_entries(tmp_path / "e.npz")

    refused(r"holds 'row', 'value'; expected arrays 'row', 'col' and 'value'", row=np.zeros(2), value=np.zeros(2))
    refused(r"expected row, col and value as 1-D arrays of one length", row=[0, 1], col=[0], value=[1.0])
    refused(r"row\[1\]: -3 is not an index", row=[0, -3], col=[0, 0], value=[1.0, 2.0])
    refused(r"value\[0\]: nan is not a finite number \(a file of entries", row=[0], col=[0], value=[np.nan])
    refused(r"entry 0 and entry 2: entry \(1, 1\) is listed twice", row=[1, 0, 1], col=[1, 1, 1], value=[1, 2, 3.0])
    refused(r"no entries", row=np.zeros(0, int), col=np.zeros(0, int), value=np.zeros(0))
    refused(r"expected real numbers in value, got dtype <U1", row=[0], col=[0], value=["a"])
    refused(r"expected real numbers in row, got dtype timedelta64", row=np.zeros(1, "m8[s]"), col=[0], value=[1.0])
    torch.save(torch.zeros(3), tmp_path / "e.pt")
    with pytest.raises(LabError, match=r"e\.pt: holds a Tensor, not a dict of tensors"):
        read_entries(tmp_path / "e.pt")
    with pytest.raises(LabError, match=r"nowhere\.npz: no such file"):
        read_entries(tmp_path / "nowhere.npz")
    with pytest.raises(LabError, match=r"not a regular file"):
        read_entries(tmp_path)


def test_a_suffix_in_capitals_is_the_same_format(tmp_path: Path) -> None:
    """``A.NPY`` is a .npy file, not a CSV."""
    np.save(tmp_path / "A.npy", np.eye(3))
    (tmp_path / "A.npy").rename(tmp_path / "A.NPY")
    assert np.array_equal(read_data(tmp_path / "A.NPY").features, np.eye(3))
