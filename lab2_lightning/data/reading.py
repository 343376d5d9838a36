"""Reading a data file into arrays: a CSV (header and label column optional), a ``.npy`` or a ``.pt`` matrix, or a
matrix's observed entries as (row, column, value) triples.

Kept apart from the DataModule because prediction reads new files with the same rules. Every error names the file,
and for a CSV the line and column, as an editor shows them. A CSV is read by one numeric ``pandas.read_csv`` and
checked with array operations; only a file that fails a check is read again, cell by cell as text, to name the cell.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch

from lab2_lightning.errors import LabError

LabelColumn = int | Literal["auto"] | None

DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d+")

# The cells that stand for a missing entry in a CSV, and what to do about one.
MISSING = ["", "NaN", "nan", "NA"]
ALLOW_MISSING = "the MLP needs every entry; to factorise the observed ones, pass --data.allow_missing true"
OMIT_ENTRY = "a file of entries lists the observed ones only: omit it"

# The columns of UCI's iris.data, which has no header, as UCI's iris.names describes them (in cm).
IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def packaged_iris() -> Path:
    """The UCI ``iris.data`` shipped with the package (byte-identical to UCI's, not scikit-learn's copy)."""
    return Path(str(resources.files("lab2_lightning") / "data" / "iris.data"))


@dataclass(frozen=True)
class Table:
    """The numeric features (rows x columns), the labels as strings (or None), names and 1-based line numbers.

    ``features`` is float64 from a CSV; from a matrix file, float32 or float64 as stored (a ``.npy`` one is its
    read-only memory map), other numbers widened to the float type that holds them exactly (float16 and 8- or
    16-bit integers to float32, wider integers to float64). Missing entries, where allowed, are NaN.
    ``feature_names`` are the header's names, or ``x1``, ``x2``, ... (by position) when ``has_header`` is false.
    """

    features: np.ndarray
    labels: list[str] | None
    feature_names: list[str]
    path: Path
    lines: np.ndarray
    has_header: bool = False


@dataclass(frozen=True)
class Triples:
    """A matrix's observed entries: ``values[k]`` is at (``rows[k]``, ``cols[k]``), 0-based, each pair once.

    ``values`` is float32 or float64 as stored (a CSV's are float64); ``shape`` is the largest index + 1 on each axis.
    """

    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray
    shape: tuple[int, int]
    path: Path


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _regular_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise LabError(f"{path}: no such file" if not path.exists() else f"{path}: not a regular file")
    return path


# A CSV's separator and header are judged from its first 50 lines, or fewer (3 at least) once they pass 1 MiB: the
# lines of a file with 100,000 columns are long.
SAMPLE_LINES = 50
SAMPLE_CHARS = 1 << 20


def _separator(lines: list[str]) -> str:
    """The cell separator: ``;`` or a tab when it splits each of the non-blank ``lines`` into the same number (more
    than one) of cells, else ``,``.

    Spreadsheets in locales with a decimal comma save "CSV" with ``;`` (and ``5,1``), and tab-separated exports are
    common: read with ``,``, such a file is one column of text and every message would be beside the point. ``;``
    and the tab are tried first because a decimal comma splits the lines of a ``;`` file evenly too.
    """
    for candidate in (";", "\t"):
        try:
            widths = {len(row) for row in csv.reader(lines, delimiter=candidate)}
        except csv.Error:
            continue
        if len(widths) == 1 and widths.pop() > 1:
            return candidate
    return ","


def _sample(path: Path) -> tuple[str, int, list[list[str]]]:
    """The separator, the 1-based number of the first line with a non-empty cell, and the stripped cells of the
    first lines from there on (blank ones left out)."""
    lines: list[str] = []
    try:
        with path.open(encoding="utf-8-sig", newline="") as file:
            for line in file:
                lines.append(line)
                if len(lines) == SAMPLE_LINES or (len(lines) > 2 and sum(map(len, lines)) > SAMPLE_CHARS):
                    break
    except (UnicodeDecodeError, OSError) as err:
        raise LabError(f"{path}: cannot be read as UTF-8 CSV text ({type(err).__name__})") from None
    sep = _separator([line for line in lines if line.strip()])
    rows = [[cell.strip() for cell in next(csv.reader([line], delimiter=sep), [])] for line in lines]
    filled = [n for n, row in enumerate(rows) if any(row)]
    return sep, (filled[0] + 1 if filled else 0), [rows[n] for n in filled]


def _layout(first: list[str], last_column: Sequence[str], label_column: LabelColumn) -> tuple[bool, int | None]:
    """Whether the first row is a header, and the label column's position (None: no labels).

    A first row none of whose feature cells is a number is a header. ``auto`` takes the last column as labels when
    none of its cells (``last_column``, from the first row on) below a header is a number, and not all of them are
    missing entries (a column with nothing in it is no labels).
    """
    n_columns = len(first)
    label_at = None
    if isinstance(label_column, int):
        if not -n_columns <= label_column < n_columns:
            raise LabError(f"label_column {label_column} is out of range for a CSV with {n_columns} columns")
        label_at = label_column % n_columns
    has_header = not any(_is_number(cell) for c, cell in enumerate(first) if c != label_at)
    cells = last_column[has_header:]
    if label_column == "auto" and not any(map(_is_number, cells)) and not all(cell in MISSING for cell in cells):
        label_at = n_columns - 1
    return has_header, label_at


def _read_cells(path: Path, sep: str, skip: int) -> pd.DataFrame:
    """All cells after the first ``skip`` lines as stripped strings, indexed by 1-based line number; blank lines
    dropped."""
    try:
        frame = pd.read_csv(
            path, sep=sep, header=None, skiprows=skip, dtype=str, keep_default_na=False, skip_blank_lines=False,
            encoding="utf-8",
        )  # fmt: skip
    except pd.errors.EmptyDataError:
        raise LabError(f"{path}: the file is empty") from None
    except pd.errors.ParserError as err:
        detail = str(err).strip().splitlines()[-1].removeprefix("Error tokenizing data. C error: ")
        raise LabError(f"{path}: not a rectangular CSV ({detail})") from None
    except (UnicodeDecodeError, OSError) as err:
        raise LabError(f"{path}: cannot be read as UTF-8 CSV text ({type(err).__name__})") from None
    frame.index = frame.index + skip + 1
    frame = frame.fillna("").astype(str).apply(lambda column: column.str.strip())
    frame = frame[~frame.eq("").all(axis=1)]
    if frame.empty:
        raise LabError(f"{path}: the file has no data rows")
    return frame


def _bad_cell(where: str, cell: str, missing: str) -> str:
    """The message for a feature ``cell`` that is not a finite number; ``missing`` says what to do about a missing
    entry."""
    if cell in MISSING:
        return f"{where}: {repr(cell) if cell else 'empty cell'} (a missing entry: {missing})"
    if _is_number(cell):
        return f"{where}: {cell!r} is not a finite number"
    if DECIMAL_COMMA.fullmatch(cell):
        return f"{where}: {cell!r} is not a number (a decimal comma? write {cell.replace(',', '.')})"
    return f"{where}: {cell[:40]!r} is not a number"


def _read_cell_by_cell(
    path: Path, sep: str, first_line: int, label_column: LabelColumn, allow_missing: bool, missing: str
) -> Table:
    """The table from its cells as text: slow (10 to 40 times pandas' numeric parse), but each cell is at hand to
    name in a message. The reference that :func:`_read_numbers` must agree with."""
    frame = _read_cells(path, sep, max(first_line - 1, 0))
    first = list(frame.iloc[0])
    has_header, label_at = _layout(first, list(frame.iloc[:, -1]), label_column)
    names = first if has_header else [f"x{c + 1}" for c in range(frame.shape[1])]
    twice = sorted({name for name in names if names.count(name) > 1}) if has_header else []
    if twice:
        raise LabError(f"{path}, line {frame.index[0]}: the header names {', '.join(map(repr, twice))} twice")
    body = frame.iloc[1:] if has_header else frame
    if body.empty:
        raise LabError(f"{path}: the file has a header but no data rows")
    feature_cols = [c for c in range(frame.shape[1]) if c != label_at]
    if not feature_cols:
        raise LabError(f"{path}: no feature columns besides the label column")

    values = np.empty((len(body), len(feature_cols)), dtype=np.float64)
    bad = np.zeros(values.shape, dtype=bool)
    for j, col in enumerate(feature_cols):
        cells = body.iloc[:, col]
        values[:, j] = pd.to_numeric(cells, errors="coerce").to_numpy(dtype=np.float64)
        bad[:, j] = ~np.isfinite(values[:, j]) & ~(cells.isin(MISSING).to_numpy() & allow_missing)
    if bad.any():  # the first in reading order
        row, j = divmod(int(np.argmax(bad)), len(feature_cols))
        where = f"{path}, line {body.index[row]}, column {feature_cols[j] + 1}"
        raise LabError(_bad_cell(where, body.iloc[row, feature_cols[j]], missing))

    labels = None
    if label_at is not None:
        labels = list(body.iloc[:, label_at])
        for line, label in zip(body.index, labels, strict=True):
            if not label:
                raise LabError(f"{path}, line {line}, column {label_at + 1}: empty label")
    feature_names = [names[c] for c in feature_cols]
    return Table(values, labels, feature_names, path, body.index.to_numpy(dtype=np.int64), has_header)


def _read_numbers(
    path: Path, sep: str, first_line: int, rows: list[list[str]], label_column: LabelColumn, allow_missing: bool
) -> Table | None:
    """The table from one numeric ``pd.read_csv`` and array checks; None when a check fails, and
    :func:`_read_cell_by_cell` then names the cell (or reads what pandas does not take as a number, such as a line
    of spaces). ``sep``, ``first_line`` and ``rows``: what :func:`_sample` saw."""
    first = rows[0]
    last_column = [row[-1] if len(row) == len(first) else "" for row in rows]
    has_header, label_at = _layout(first, last_column, label_column)
    if has_header and len(set(first)) < len(first):
        return None
    skip = first_line - 1 + has_header
    try:
        # The labels as text (stripped): through a converter, since a dtype per column costs pandas a Series each.
        frame = pd.read_csv(
            path, sep=sep, header=None, names=range(len(first)), skiprows=skip, skip_blank_lines=False,
            keep_default_na=False, na_values=MISSING, converters={} if label_at is None else {label_at: str.strip},
            encoding="utf-8",
        )  # fmt: skip
    except (ValueError, OSError):  # pandas' parser errors are ValueErrors, as is a UnicodeDecodeError
        return None
    labels = None if label_at is None else frame.pop(label_at)
    # Given column names, pandas makes the first cells of rows longer than the first row their index.
    if not frame.index.equals(pd.RangeIndex(len(frame))) or frame.empty:
        return None
    numbers = frame.to_numpy()  # of dtype object if pandas read a column as text (or as booleans)
    if numbers.dtype.kind not in "iuf":
        return None
    features = numbers.astype(np.float64, copy=False)  # column-major, as pandas stores it
    missing = _missing_per_row(features)
    if missing is None:
        return None
    lines = np.arange(skip + 1, skip + 1 + len(features))
    # pandas reads a blank line as a row of missing entries: the text tells them apart.
    blank = (missing == features.shape[1]) & (True if labels is None else labels.isna().to_numpy())
    blank[blank] = _blank_lines(path, sep, lines[blank])
    if blank.any():
        features, lines = features[~blank], lines[~blank]
        labels = None if labels is None else labels[~blank]
    if not len(features) or (missing[~blank].any() and not allow_missing):
        return None
    if labels is not None:
        if labels.isna().any() or labels.eq("").any():
            return None
        if label_column == "auto" and any(map(_is_number, labels.unique())):
            return None
        labels = labels.tolist()
    names = first if has_header else [f"x{c + 1}" for c in range(len(first))]
    feature_names = [name for c, name in enumerate(names) if c != label_at]
    return Table(features, labels, feature_names, path, lines, has_header)


# Entries per block in the finiteness checks, which keeps their temporary boolean arrays small.
CHECK_BLOCK = 1 << 20


def _blocks(values: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """``values`` (2-D) in blocks of whole rows of about :data:`CHECK_BLOCK` entries, each with its first row."""
    step = max(1, CHECK_BLOCK // max(1, values.shape[1]))
    for start in range(0, len(values), step):
        yield start, values[start : start + step]


def _missing_per_row(values: np.ndarray) -> np.ndarray | None:
    """How many NaNs each row of ``values`` holds, or None if an infinity is there."""
    counts = np.zeros(len(values), dtype=np.int64)
    for start, block in _blocks(values):
        if not np.isfinite(block).all():
            if np.isinf(block).any():
                return None
            counts[start : start + len(block)] = np.isnan(block).sum(axis=1)
    return counts


def _blank_lines(path: Path, sep: str, numbers: np.ndarray) -> np.ndarray:
    """Which of these lines (1-based, ascending) have no non-empty cell, read as text up to the last of them."""
    wanted = dict.fromkeys(numbers.tolist(), False)
    if wanted:
        with path.open(encoding="utf-8-sig", newline="") as file:
            for number, line in enumerate(itertools.islice(file, int(numbers[-1])), 1):
                if number in wanted:
                    wanted[number] = not any(cell.strip() for cell in next(csv.reader([line], delimiter=sep), []))
    return np.fromiter(wanted.values(), dtype=bool, count=len(wanted))


def _read_table(path: str | Path, label_column: LabelColumn, allow_missing: bool, missing: str) -> Table:
    """The table, its features in pandas' column-major order; ``missing`` says what to do about a missing entry."""
    path = _regular_file(path)
    sep, first_line, rows = _sample(path)
    table = _read_numbers(path, sep, first_line, rows, label_column, allow_missing) if rows else None
    return table or _read_cell_by_cell(path, sep, first_line, label_column, allow_missing, missing)


def read_table(path: str | Path, label_column: LabelColumn = "auto", allow_missing: bool = False) -> Table:
    """Read a CSV of numeric features and, optionally, one label column.

    ``label_column="auto"`` takes the last column as labels when none of its cells is a number (Iris's species);
    give its index for numeric labels, or ``None`` for a file with no labels. A first row whose feature cells
    are all non-numeric is a header. A missing entry (an empty cell, ``NaN``, ``nan`` or ``NA``) is NaN with
    ``allow_missing``, else refused; any other non-numeric or infinite cell is a ``LabError`` naming the file, line
    and column (both 1-based, as an editor shows them). Blank lines are skipped.
    """
    table = _read_table(path, label_column, allow_missing, ALLOW_MISSING)
    return replace(table, features=np.ascontiguousarray(table.features))  # row-major, as torch expects


def _first_non_finite(values: np.ndarray, allow_missing: bool) -> tuple[int, int] | None:
    """The (row, column) of the first infinity in ``values`` (2-D), or of the first NaN too unless ``allow_missing``."""
    for start, block in _blocks(values):
        bad = np.isinf(block) if allow_missing else ~np.isfinite(block)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            return start + int(row), int(col)
    return None


def _real(array: np.ndarray, path: Path, what: str) -> np.ndarray:
    """``array``, refused unless it holds real numbers: integers or floats (not booleans, text, times, complex
    numbers; numpy counts a time span as an integer)."""
    if array.dtype.kind not in "iuf":
        raise LabError(f"{path}: expected real numbers{what}, got dtype {array.dtype}")
    return array


def _floats(array: np.ndarray) -> np.ndarray:
    """``array`` itself if it is float32 or float64 (a memory map stays one), else in the narrower of them that
    holds its numbers exactly (float64 for the rest)."""
    if array.dtype in (np.float32, np.float64):  # in the machine's byte order, too
        return array
    dtype = np.promote_types(array.dtype, np.float32)
    return array.astype(dtype if dtype in (np.float32, np.float64) else np.float64)


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    """A loaded tensor as numpy (which has no bfloat16: that becomes float32, exactly)."""
    return (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy(force=True)


MATRIX_SUFFIXES = (".npy", ".pt")


def read_matrix(path: str | Path, allow_missing: bool = False) -> Table:
    """A 2-D numeric array from ``.npy`` (memory-mapped copy-on-write, no pickles) or ``.pt`` (a tensor, loaded with
    ``weights_only``). NaNs are missing entries: kept with ``allow_missing``, else refused; infinities are refused."""
    path = _regular_file(path)
    try:
        if path.suffix.lower() == ".npy":
            # Copy-on-write: the DataModule normalises in place, and each page it writes replaces the file's page.
            array = np.load(path, mmap_mode="c", allow_pickle=False)
        else:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(loaded, torch.Tensor):
                raise LabError(f"{path}: holds a {type(loaded).__name__}, not a tensor")
            array = _numpy(loaded)
    except LabError:
        raise
    except Exception as err:
        raise LabError(f"{path}: not a readable {path.suffix} matrix ({type(err).__name__})") from None
    if array.ndim != 2 or 0 in array.shape:
        raise LabError(f"{path}: expected a non-empty 2-D matrix, got shape {tuple(array.shape)}")
    values = _floats(_real(array, path, ""))
    bad = _first_non_finite(values, allow_missing)
    if bad is not None:
        row, col = bad
        where = f"{path}, row {row + 1}, column {col + 1}"
        if np.isnan(values[row, col]):
            raise LabError(f"{where}: nan (a missing entry: {ALLOW_MISSING})")
        raise LabError(f"{where}: {values[row, col]} is not a finite number")
    names = [f"x{c + 1}" for c in range(values.shape[1])]
    return Table(values, None, names, path, np.arange(1, len(values) + 1), False)


def read_data(path: str | Path, label_column: LabelColumn = "auto", allow_missing: bool = False) -> Table:
    """A matrix file (``.npy``, ``.pt``) by :func:`read_matrix`, or a CSV (any other name) by :func:`read_table`."""
    if Path(path).suffix.lower() in MATRIX_SUFFIXES:
        return read_matrix(path, allow_missing)
    return read_table(path, label_column, allow_missing)


# A file of entries: its CSV columns and its arrays' names, in this order. Indices stay below 2**31, so that a
# (row, column) pair fits in one int64 key.
ENTRY_FIELDS = ("row", "col", "value")
MAX_INDEX = 2**31


def _entry_arrays(path: Path) -> list[np.ndarray]:
    """The row, column and value arrays of a ``.npz`` or ``.pt`` file of entries."""
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                found = {name: archive[name] for name in archive.files}
        else:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
                raise LabError(f"{path}: holds a {type(loaded).__name__}, not a dict of tensors")
            found = {name: _numpy(tensor) for name, tensor in loaded.items()}
    except LabError:
        raise
    except Exception as err:
        raise LabError(f"{path}: not a readable {path.suffix} file of entries ({type(err).__name__})") from None
    if sorted(found) != sorted(ENTRY_FIELDS):
        names = ", ".join(map(repr, found)) or "nothing"
        raise LabError(f"{path}: holds {names}; expected arrays 'row', 'col' and 'value'")
    arrays = [found[name] for name in ENTRY_FIELDS]
    if any(array.ndim != 1 for array in arrays) or len({len(array) for array in arrays}) > 1:
        shapes = ", ".join(f"{name} {array.shape}" for name, array in zip(ENTRY_FIELDS, arrays, strict=True))
        raise LabError(f"{path}: expected row, col and value as 1-D arrays of one length, got {shapes}")
    return arrays


def _indices(path: Path, numbers: np.ndarray, field: str, where: Callable[[int, str], str]) -> np.ndarray:
    """``numbers`` as int64 indices: whole numbers (``3.0`` is 3) from 0 to 2**31 - 1, the first other refused."""
    _real(numbers, path, f" in {field}")
    with np.errstate(invalid="ignore"):  # a NaN, or a number beyond int64, becomes some other number
        indices = numbers.astype(np.int64)
    bad = (indices != numbers) | (indices < 0) | (indices >= MAX_INDEX)
    if bad.any():
        i = int(np.argmax(bad))
        raise LabError(f"{path}, {where(i, field)}: {numbers[i]:.17g} is not an index (0, 1, 2, ... below 2**31)")
    return indices


def read_entries(path: str | Path) -> Triples:
    """A matrix's observed entries as (row, column, value) triples from a CSV of 3 columns (in that order, or in any
    order under a header naming them; any separator :func:`read_table` takes), a ``.npz`` of arrays ``row``, ``col``
    and ``value``, or a ``.pt`` dict of tensors of those names.

    Indices are 0-based, below 2**31; values are finite (an entry with no value is left out of the file). A
    (row, column) pair listed twice is refused, naming both places.
    """
    path = _regular_file(path)
    if path.suffix.lower() in (".npz", ".pt"):
        rows, cols, values = _entry_arrays(path)

        def where(i: int, field: str) -> str:
            return f"{field}[{i}]" if field else f"entry {i}"

    else:
        table = _read_table(path, None, False, OMIT_ENTRY)
        if table.features.shape[1] != 3:
            raise LabError(f"{path}: {table.features.shape[1]} columns; a CSV of entries has 3: row, column, value")
        order = list(range(3))
        if table.has_header:  # its columns by name, in any order
            names = [{"column": "col"}.get(name.strip().lower(), name.strip().lower()) for name in table.feature_names]
            if sorted(names) != sorted(ENTRY_FIELDS):
                raise LabError(
                    f"{path}: the header names {', '.join(map(repr, table.feature_names))}; a CSV of entries names "
                    "its columns row, col (or column) and value, in any order, or has no header"
                )
            order = [names.index(field) for field in ENTRY_FIELDS]
        rows, cols, values = (table.features[:, k] for k in order)  # views
        values = values.copy()  # not a view that keeps the index columns alive

        def where(i: int, field: str) -> str:
            return f"line {table.lines[i]}" + (f", column {order[ENTRY_FIELDS.index(field)] + 1}" if field else "")

    if not len(values):
        raise LabError(f"{path}: no entries")
    rows, cols = _indices(path, rows, "row", where), _indices(path, cols, "col", where)
    values = _floats(_real(values, path, " in value"))
    bad = _first_non_finite(values.reshape(-1, 1), allow_missing=False)
    if bad is not None:
        raise LabError(f"{path}, {where(bad[0], 'value')}: {values[bad[0]]} is not a finite number ({OMIT_ENTRY})")
    shape = (int(rows.max()) + 1, int(cols.max()) + 1)
    # Each (row, column) pair as one number: sorted, a pair listed twice is two equal neighbours. 32-bit numbers,
    # where they suffice, sort twice as fast.
    keys = rows * shape[1] + cols
    in_order = np.sort(keys.astype(np.uint32) if shape[0] * shape[1] <= 2**32 else keys)
    if (in_order[1:] == in_order[:-1]).any():  # then, more slowly, find where
        order = np.argsort(keys, kind="stable")
        twice = np.flatnonzero(keys[order][1:] == keys[order][:-1])
        i = twice[np.argmin(order[twice + 1])]
        a, b = order[i], order[i + 1]
        raise LabError(f"{path}, {where(a, '')} and {where(b, '')}: entry ({rows[a]}, {cols[a]}) is listed twice")
    return Triples(rows, cols, values, shape, path)


def align_columns(
    x: torch.Tensor, columns: list[str] | None, expected: list[str] | None, n_expected: int, source: str
) -> torch.Tensor:
    """``x``'s feature columns in the order a model was trained on.

    A header (``columns``) and a model trained with named columns (``expected``): the columns are matched by name,
    so a file that lists them in another order gets the same predictions; a name missing from the file or unknown
    to the model is a ``LabError`` naming it, since a silently misplaced column gives confident wrong predictions.
    Without a header, or for a model trained on a file without one, the columns are taken by position, after a
    check of their count. ``source`` names the file in messages.
    """
    if columns is not None and expected is not None:
        repeated = sorted({name for name in columns if columns.count(name) > 1})
        missing = [name for name in expected if name not in columns]
        unknown = [name for name in columns if name not in expected]
        if repeated or missing or unknown:
            problems = [
                f"{label} {', '.join(map(repr, names))}"
                for label, names in (("missing", missing), ("unknown", unknown), ("repeated", repeated))
                if names
            ]
            raise LabError(
                f"{source}: the header's feature columns do not match the model's ({'; '.join(problems)}); "
                f"the model was trained on {', '.join(expected)}"
            )
        return x[:, [columns.index(name) for name in expected]]
    if x.shape[1] != n_expected:
        raise LabError(f"{source}: {x.shape[1]} feature columns, but the model was trained on {n_expected}")
    return x


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes: what "the same data" means to a resume."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
