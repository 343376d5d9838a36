"""Reading a data file into arrays: a CSV (header and label column optional), a ``.npy`` or a ``.pt`` matrix.

Kept apart from the DataModule because prediction reads new files with the same rules. Every error names the file,
and for a CSV the line and column, as an editor shows them.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch

from lab2_lightning.errors import LabError

LabelColumn = int | Literal["auto"] | None

DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d+")


# The columns of UCI's iris.data, which has no header, as UCI's iris.names describes them (in cm).
IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def packaged_iris() -> Path:
    """The UCI ``iris.data`` shipped with the package (byte-identical to UCI's, not scikit-learn's copy)."""
    return Path(str(resources.files("lab2_lightning") / "data" / "iris.data"))


@dataclass(frozen=True)
class Table:
    """The numeric features (float64, rows x columns), the labels as strings (or None), names and line numbers.

    ``feature_names`` are the header's names, or ``x1``, ``x2``, ... (by position) when ``has_header`` is false.
    """

    features: np.ndarray
    labels: list[str] | None
    feature_names: list[str]
    path: Path
    lines: list[int]
    has_header: bool = False


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


# How many of a file's first non-blank lines decide its separator.
SEPARATOR_SAMPLE_LINES = 50


def _separator(path: Path) -> str:
    """The file's cell separator: ``;`` or a tab when it splits each of the first lines into the same number (more
    than one) of cells, else ``,``.

    Spreadsheets in locales with a decimal comma save "CSV" with ``;`` (and ``5,1``), and tab-separated exports are
    common: read with ``,``, such a file is one column of text and every message would be beside the point. ``;``
    and the tab are tried first because a decimal comma splits the lines of a ``;`` file evenly too.
    """
    with path.open(encoding="utf-8", newline="") as file:
        lines = [line for line in itertools.islice(file, SEPARATOR_SAMPLE_LINES) if line.strip()]
    for candidate in (";", "\t"):
        try:
            widths = {len(row) for row in csv.reader(lines, delimiter=candidate)}
        except csv.Error:
            continue
        if len(widths) == 1 and widths.pop() > 1:
            return candidate
    return ","


def _read_cells(path: Path) -> pd.DataFrame:
    """All cells as stripped strings, indexed by 1-based line number; blank lines dropped. The separator is a comma,
    a semicolon or a tab (:func:`_separator`)."""
    if not path.exists():
        raise LabError(f"{path}: no such file")
    if not path.is_file():
        raise LabError(f"{path}: not a regular file")
    try:
        frame = pd.read_csv(
            path,
            sep=_separator(path),
            header=None,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=False,
            encoding="utf-8",
        )
    except pd.errors.EmptyDataError:
        raise LabError(f"{path}: the file is empty") from None
    except pd.errors.ParserError as err:
        detail = str(err).strip().splitlines()[-1].removeprefix("Error tokenizing data. C error: ")
        raise LabError(f"{path}: not a rectangular CSV ({detail})") from None
    except (UnicodeDecodeError, PermissionError, OSError) as err:
        raise LabError(f"{path}: cannot be read as UTF-8 CSV text ({type(err).__name__})") from None
    frame.index = frame.index + 1
    frame = frame.fillna("").astype(str).apply(lambda column: column.str.strip())
    frame = frame[~frame.eq("").all(axis=1)]
    if frame.empty:
        raise LabError(f"{path}: the file has no data rows")
    return frame


def _label_position(frame: pd.DataFrame, label_column: LabelColumn, has_header: bool) -> int | None:
    n_columns = frame.shape[1]
    if label_column is None:
        return None
    if label_column == "auto":
        last = frame.iloc[1 if has_header else 0 :, -1]
        return n_columns - 1 if not any(_is_number(cell) for cell in last) else None
    if not -n_columns <= label_column < n_columns:
        raise LabError(f"label_column {label_column} is out of range for a CSV with {n_columns} columns")
    return label_column % n_columns


MATRIX_SUFFIXES = (".npy", ".pt")


def read_matrix(path: str | Path) -> Table:
    """A 2-D numeric array from ``.npy`` (no pickles) or ``.pt`` (a tensor, loaded with ``weights_only``)."""
    path = Path(path)
    if not path.is_file():
        raise LabError(f"{path}: no such file" if not path.exists() else f"{path}: not a regular file")
    try:
        if path.suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        else:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(loaded, torch.Tensor):
                raise LabError(f"{path}: holds a {type(loaded).__name__}, not a tensor")
            array = loaded.numpy(force=True) if loaded.dtype.is_floating_point else loaded.numpy()
    except LabError:
        raise
    except Exception as err:
        raise LabError(f"{path}: not a readable {path.suffix} matrix ({type(err).__name__})") from None
    if array.ndim != 2 or 0 in array.shape:
        raise LabError(f"{path}: expected a non-empty 2-D matrix, got shape {tuple(array.shape)}")
    if not (np.issubdtype(array.dtype, np.number) and not np.iscomplexobj(array)):
        raise LabError(f"{path}: expected real numbers, got dtype {array.dtype}")
    values = np.asarray(array, dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise LabError(f"{path}, row {row + 1}, column {col + 1}: {values[row, col]} is not a finite number")
    names = [f"x{c + 1}" for c in range(values.shape[1])]
    return Table(values, None, names, path, list(range(1, len(values) + 1)))


def read_data(path: str | Path, label_column: LabelColumn = "auto") -> Table:
    """A matrix file (``.npy``, ``.pt``) by :func:`read_matrix`, or a CSV (any other name) by :func:`read_table`."""
    if Path(path).suffix in MATRIX_SUFFIXES:
        return read_matrix(path)
    return read_table(path, label_column)


def read_table(path: str | Path, label_column: LabelColumn = "auto") -> Table:
    """Read a CSV of numeric features and, optionally, one label column.

    ``label_column="auto"`` takes the last column as labels when none of its cells is a number (Iris's species);
    give its index for numeric labels, or ``None`` for a file with no labels. A first row whose feature cells
    are all non-numeric is a header. Any other non-numeric, empty, NaN or infinite cell is a ``LabError``
    naming the file, line and column (both 1-based, as an editor shows them).
    """
    path = Path(path)
    frame = _read_cells(path)
    first = list(frame.iloc[0])
    has_header = False
    label_at = _label_position(frame, label_column, has_header=False)
    feature_cols = [c for c in range(frame.shape[1]) if c != label_at]
    if not any(_is_number(first[c]) for c in feature_cols):
        has_header = True
        label_at = _label_position(frame, label_column, has_header=True)
        feature_cols = [c for c in range(frame.shape[1]) if c != label_at]
    names = first if has_header else [f"x{c + 1}" for c in range(frame.shape[1])]
    twice = sorted({name for name in names if names.count(name) > 1}) if has_header else []
    if twice:
        raise LabError(f"{path}, line {frame.index[0]}: the header names {', '.join(map(repr, twice))} twice")
    body = frame.iloc[1:] if has_header else frame
    if body.empty:
        raise LabError(f"{path}: the file has a header but no data rows")
    if not feature_cols:
        raise LabError(f"{path}: no feature columns besides the label column")

    values = np.empty((len(body), len(feature_cols)), dtype=np.float64)
    for j, col in enumerate(feature_cols):
        cells = body.iloc[:, col]
        numbers = pd.to_numeric(cells, errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(numbers)
        if bad.any():
            first_bad = int(np.argmax(bad))
            cell = cells.iloc[first_bad]
            where = f"{path}, line {body.index[first_bad]}, column {col + 1}"
            if not cell:
                raise LabError(f"{where}: empty cell")
            if _is_number(cell):
                raise LabError(f"{where}: {cell!r} is not a finite number")
            if DECIMAL_COMMA.fullmatch(cell):
                raise LabError(f"{where}: {cell!r} is not a number (a decimal comma? write {cell.replace(',', '.')})")
            raise LabError(f"{where}: {cell[:40]!r} is not a number")
        values[:, j] = numbers

    labels = None
    if label_at is not None:
        labels = list(body.iloc[:, label_at])
        for line, label in zip(body.index, labels, strict=True):
            if not label:
                raise LabError(f"{path}, line {line}, column {label_at + 1}: empty label")
    feature_names = [names[c] for c in feature_cols]
    return Table(values, labels, feature_names, path, [int(line) for line in body.index], has_header)


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
