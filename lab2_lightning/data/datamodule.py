"""The DataModule both exercises share: a matrix (Iris by default), preprocessed, split, and served as full batches,
since every step of the lab is a plain gradient step on all its rows or entries.

A matrix comes in one of two layouts. *Dense*: every row and column, with NaN where an entry is missing (a CSV,
``.npy`` or ``.pt`` table). *Entries*: (row, column, value) triples of the observed entries only, for a matrix too
large or too empty to hold densely. Either may hide a seeded fraction of its observed entries for validation.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from jsonargparse.typing import NonNegativeInt, PositiveInt, restricted_number_type
from lightning.pytorch.utilities import rank_zero_only

from lab2_lightning.data.reading import IRIS_FEATURES, LabelColumn, packaged_iris, read_data
from lab2_lightning.errors import LabError
from lab2_lightning.models.linalg import observed_matrix

# How features are normalised, column by column, as (x - shift) / scale. The lab's Exercise 2 divides by the
# variance, not the standard deviation: that is "divide_by_variance".
Preprocessing = Literal["centre", "divide_by_variance", "standardise", "none"]
# The fraction of the observed entries hidden from training, to measure how well the missing ones are recovered.
Holdout = restricted_number_type("Holdout", float, [(">=", 0), ("<", 1)])
Batch = dict[str, Any]


@dataclass
class Entries:
    """Entries of a matrix as (row, column, value) triples, one tensor each."""

    row: torch.Tensor
    col: torch.Tensor
    value: torch.Tensor

    def __len__(self) -> int:
        return len(self.value)

    def select(self, chosen: torch.Tensor | slice) -> Entries:
        return Entries(self.row[chosen], self.col[chosen], self.value[chosen])

    def clone(self) -> Entries:
        return Entries(self.row.clone(), self.col.clone(), self.value.clone())

    def to(self, device: torch.device, dtype: torch.dtype) -> Entries:
        return Entries(self.row.to(device), self.col.to(device), self.value.to(device, dtype))

    def batch(self) -> Batch:
        return {"row": self.row, "col": self.col, "value": self.value}

    @staticmethod
    def none(dtype: torch.dtype) -> Entries:
        return Entries(torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long), torch.empty(0, dtype=dtype))


def column_means(entries: Entries, n_columns: int) -> torch.Tensor:
    """Each column's mean over its entries (0 for a column with none)."""
    counts = torch.bincount(entries.col, minlength=n_columns)
    sums = torch.zeros(n_columns, dtype=entries.value.dtype, device=entries.value.device)
    return (sums.index_add_(0, entries.col, entries.value) / counts).nan_to_num(0.0)


def hide(n_observed: int, fraction: float, seed: int) -> torch.Tensor:
    """Which of ``n_observed`` entries (their positions) to hide: a seeded ``fraction`` of them, in ascending order."""
    count = round(fraction * n_observed)
    if fraction and not 0 < count < n_observed:
        raise LabError(f"data.holdout {fraction} of {n_observed} observed entries hides {count}: too few or too many")
    return torch.randperm(n_observed, generator=torch.Generator().manual_seed(seed))[:count].sort().values


ENTRIES_AT_ONCE = 1 << 16  # how many of a matrix's entries a pass over it copies at a time


def row_chunks(x: torch.Tensor, rows: torch.Tensor) -> Iterator[tuple[int, torch.Tensor]]:
    """``x[rows]``, a few rows at a time (copies), each with its first row's place in ``rows``: a pass over a
    memory-mapped matrix that never copies it whole."""
    step = max(1, ENTRIES_AT_ONCE // max(1, x.shape[1]))
    return ((start, x[rows[start : start + step]]) for start in range(0, len(rows), step))


def observed_sums(
    x: torch.Tensor, rows: torch.Tensor, shift: torch.Tensor | float = 0.0, scale: torch.Tensor | float = 1.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per column of ``(x[rows] - shift) / scale``: how many entries are observed (not NaN), their sum and their
    sum of squares (float64)."""
    counts = torch.zeros(x.shape[1], dtype=torch.long)
    sums, squares = torch.zeros(x.shape[1], dtype=torch.float64), torch.zeros(x.shape[1], dtype=torch.float64)
    for _, chunk in row_chunks(x, rows):
        counts += (~chunk.isnan()).sum(dim=0)
        chunk = chunk.sub_(shift).div_(scale).nan_to_num_(0.0).double()
        sums += chunk.sum(dim=0)
        squares += chunk.square_().sum(dim=0)
    return counts, sums, squares


def preprocessing_stats(x: torch.Tensor, preprocessing: Preprocessing) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``(shift, scale)`` of ``preprocessing`` for a complete matrix: each column's mean (0 for ``none``) and 1,
    its (unbiased) variance or its standard deviation."""
    mean = x.mean(dim=0)
    if preprocessing == "divide_by_variance":
        return mean, x.var(dim=0)
    if preprocessing == "standardise":
        return mean, x.std(dim=0)
    return (torch.zeros_like(mean) if preprocessing == "none" else mean), torch.ones_like(mean)


def check_columns(x: torch.Tensor, preprocessing: Preprocessing, names: list[str], where: str) -> None:
    """Refuse a complete matrix that ``preprocessing`` turns into 0/0 or into nothing: a constant column divided by
    its spread (0, or a rounding error), or every column constant (centring leaves only zeros)."""
    lowest, highest = x.aminmax(dim=0)
    constant = [names[j] for j in (lowest >= highest).nonzero().flatten().tolist()]
    if preprocessing == "none" or not constant:
        return
    if len(constant) == x.shape[1]:
        raise LabError(f"{where}: every feature column is constant: there is nothing to factorise or learn")
    if preprocessing in ("divide_by_variance", "standardise"):
        raise LabError(
            f"{where}: feature column {', '.join(constant[:5])} is constant, and preprocessing {preprocessing} "
            "divides by its spread, 0; drop it or use data.preprocessing centre"
        )


def root_mean_square(squares: float, count: int, where: str) -> float:
    """The scale of the training entries once normalised; refused if they are all zero: nothing to factorise."""
    if not squares > 0:
        raise LabError(f"{where}: no observed entry differs from its column's mean: there is nothing to factorise")
    return math.sqrt(squares / count)


class FullBatch:
    """One batch, served ``repeats`` times: a Lightning epoch of that many steps on the whole split. Lightning takes
    any iterable with a length as a loader; a DataLoader would collate the same rows again at every step."""

    def __init__(self, batch: Batch, repeats: int = 1) -> None:
        self.batch, self.repeats = batch, repeats

    def __len__(self) -> int:
        return self.repeats

    def __iter__(self) -> Iterator[Batch]:
        return iter([self.batch] * self.repeats)


class FullBatchDataModule(pl.LightningDataModule):
    """A matrix, normalised, split, and served whole. Subclasses say where it comes from and call :meth:`prepare`
    (a dense table, with class labels if any) or :meth:`prepare_entries` (triples).

    A dense batch is a dict: ``x`` (the rows' features, in the Trainer's precision, on its device), ``y`` (class
    ids, -1 without labels), ``rows`` (a slice: the rows' positions in their split, so the factorisation can pick
    its rows of U), ``split_rows`` (the split's size) and, when entries are missing, ``observed`` (a mask of ``x``)
    and ``observed_x`` (``x[observed]``). An entries batch has ``row``, ``col`` and ``value``.

    Under DDP each process trains on a contiguous share of the training rows, or of the entries, and holds only
    that share: the first process alone holds the whole training matrix (``train_x`` or ``entries``), which its
    yardsticks and ``lr auto`` need. The others normalise their share straight from the file's array in
    :meth:`setup`, or keep their share of the triples; the statistics are a pass over the array a few rows at a
    time, so a memory-mapped ``.npy`` is never copied whole by them (with ``stats_rows train`` a complete matrix's
    training rows are, once, for their variance).
    """

    train_x: torch.Tensor | None = None  # dense: the training rows held, NaN where an entry is missing or hidden
    entries: Entries | None = None  # triples: the training entries held
    held = slice(None)  # which of the training rows (or entries) this process holds: all, or its share
    # Also set by prepare: dense (the layout), features (the file's array, until the rows held are normalised),
    # train_rows (the training rows' places in it), and of the whole training split, whatever this process holds:
    # n_entries (rows x columns, or the triples listed), n_observed (what the loss sums over), n_hidden, data_rms.

    def prepare(
        self,
        features: np.ndarray,
        labels: list[str] | None,
        feature_names: list[str] | None,
        source: str,
        preprocessing: Preprocessing,
        stats_rows: Literal["all", "train"],
        val_size: int,
        split_seed: int,
        steps_per_epoch: int,
        holdout: float = 0.0,
    ) -> None:
        """Split the rows, hide entries, compute the statistics, and normalise the training rows on the first
        process (the others wait for :meth:`setup` and their share). Done in ``__init__``, not ``setup``, so that
        the sizes exist when the CLI links them into the model's arguments. The matrix keeps its file's dtype
        (float32 stays float32)."""
        n, cols = features.shape
        if val_size >= n:
            raise LabError(f"data.val_size must be below the number of rows, {n}; got {val_size}")
        self.source, self.feature_names, self.steps_per_epoch = source, feature_names, steps_per_epoch
        self.class_names = sorted(set(labels)) if labels is not None else []
        ids = {name: k for k, name in enumerate(self.class_names)}
        y = torch.tensor([ids[label] for label in labels] if labels is not None else [-1] * n)
        x = torch.from_numpy(np.require(features, requirements=["W", "C"]))  # a memory map stays one
        # np.random.RandomState(seed).permutation is what the lab's df.sample(frac=1, random_state=seed) draws.
        order = torch.from_numpy(np.random.RandomState(split_seed).permutation(n)) if val_size else torch.arange(n)
        train, val = order[: n - val_size], order[n - val_size :]
        self.features, self.train_rows, self.shape, self.dense = x, train, (len(train), cols), True
        self.train_y, self.val_y = y[train], y[val]
        counts, sums, _ = observed_sums(x, train)
        train_gaps = int(counts.sum()) < len(train) * cols
        if stats_rows == "all":  # the validation rows' entries count too
            more = observed_sums(x, val)
            counts, sums = counts + more[0], sums + more[1]
        gaps = int(counts.sum()) < (n if stats_rows == "all" else len(train)) * cols  # where the statistics come from
        self.missing = train_gaps or holdout > 0
        if (gaps or self.missing) and preprocessing not in ("centre", "none"):
            raise LabError(f"data.preprocessing {preprocessing} needs every entry; with missing ones, centre or none")
        self.hidden = self.hidden_entries(holdout, split_seed, train_gaps)
        if gaps or self.missing:  # each column's mean over its observed entries, the hidden ones left out
            counts -= torch.bincount(self.hidden.col, minlength=cols)
            sums -= torch.zeros(cols, dtype=torch.float64).index_add_(0, self.hidden.col, self.hidden.value.double())
            mean = (sums / counts).nan_to_num(0.0).to(x.dtype)
            self.shift = mean if preprocessing == "centre" else torch.zeros_like(mean)
            self.scale = torch.ones_like(mean)
        else:
            complete = x if stats_rows == "all" else x[train]
            check_columns(complete, preprocessing, feature_names or [f"x{j + 1}" for j in range(cols)], source)
            self.shift, self.scale = preprocessing_stats(complete, preprocessing)
        self.hidden.value = (self.hidden.value - self.shift[self.hidden.col]) / self.scale[self.hidden.col]
        counts, _, squares = observed_sums(x, train, self.shift, self.scale)
        self.n_observed = int(counts.sum()) - len(self.hidden)
        squares = float(squares.sum() - self.hidden.value.double().square().sum())
        self.data_rms = root_mean_square(squares, self.n_observed, source)
        self.n_entries, self.n_hidden = len(train) * cols, len(self.hidden)
        self.val_x = x[val].sub_(self.shift).div_(self.scale)
        if rank_zero_only.rank == 0:  # as Lightning's launchers number the processes they start
            self.train_x, self.features = self.normalised_rows(slice(None)), None

    def hidden_entries(self, holdout: float, split_seed: int, gaps: bool) -> Entries:
        """The training split's hidden entries, chosen among its observed ones, by row (in the split), column and
        value as read."""
        if not holdout:
            return Entries.none(self.features.dtype)
        cols, rows = self.shape[1], self.train_rows
        if not gaps:
            chosen = hide(len(rows) * cols, holdout, split_seed)
        else:  # the chosen ones among the observed entries, by their place in the split
            observed = torch.cat([(~chunk.isnan()).flatten().nonzero().flatten() + start * cols
                                  for start, chunk in row_chunks(self.features, rows)])  # fmt: skip
            chosen = observed[hide(len(observed), holdout, split_seed)]
        row, col = chosen // cols, chosen % cols
        return Entries(row, col, self.features[rows[row], col])

    def normalised_rows(self, rows: slice) -> torch.Tensor:
        """The training rows ``rows``, normalised, NaN where an entry is hidden: a copy of the file's rows, except
        that all of them, in the file's order, are normalised in place (a memory map copies on write)."""
        index = self.train_rows[rows]
        x = self.features if len(index) == len(self.features) else self.features[index]  # all: in the file's order
        first = rows.start or 0
        lo, hi = torch.searchsorted(self.hidden.row, torch.tensor([first, first + len(index)])).tolist()
        x[self.hidden.row[lo:hi] - first, self.hidden.col[lo:hi]] = math.nan
        return x.sub_(self.shift).div_(self.scale)

    def prepare_entries(
        self,
        entries: Entries,
        shape: tuple[int, int],
        source: str,
        preprocessing: Literal["centre", "none"],
        holdout: float,
        split_seed: int,
        steps_per_epoch: int,
    ) -> None:
        """Hide entries and centre the rest by their columns' observed means, as :meth:`prepare` does densely."""
        self.source, self.feature_names, self.steps_per_epoch, self.class_names = source, None, steps_per_epoch, []
        self.shape, self.dense, self.missing, self.hidden = shape, False, True, Entries.none(entries.value.dtype)
        if holdout:
            hidden = torch.zeros(len(entries), dtype=torch.bool)
            hidden[hide(len(entries), holdout, split_seed)] = True
            self.hidden, entries = entries.select(hidden), entries.select(~hidden)
        self.shift = column_means(entries, shape[1]) if preprocessing == "centre" else torch.zeros(shape[1])
        self.shift = self.shift.to(entries.value.dtype)
        self.scale = torch.ones_like(self.shift)
        entries.value = entries.value - self.shift[entries.col]
        self.hidden.value = self.hidden.value - self.shift[self.hidden.col]
        self.n_entries = self.n_observed = len(entries)
        self.n_hidden = len(self.hidden)
        self.data_rms = root_mean_square(float(entries.value.double().square().sum()), len(entries), source)
        self.entries = entries

    @property
    def n_rows(self) -> int:
        return self.shape[0]

    @property
    def n_features(self) -> int:
        return self.shape[1]

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def training_entries(self) -> Entries:
        """The entries the factorisation trains on, as triples: on the first process, all of them (elsewhere, those of
        its share, numbered within it)."""
        if not self.dense:
            return self.entries
        row, col = (~self.train_x.isnan()).nonzero().unbind(dim=1)
        return Entries(row, col, self.train_x[row, col])

    def training_matrix(self) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        """The training matrix, dense, or sparse (zero where nothing is observed) with the observed entries'
        rows and columns (the first process's)."""
        if not self.missing:
            return self.train_x, None
        seen = self.training_entries()
        return observed_matrix(seen.row, seen.col, seen.value, self.shape), (seen.row, seen.col)

    def setup(self, stage: str) -> None:
        """Hold only this process's share (see the class), and put it in the Trainer's precision, on its device,
        once: every step then reuses it."""
        dtype = torch.float64 if str(self.trainer.precision).startswith("64") else torch.float32
        device = self.trainer.strategy.root_device
        share = self._share(self.n_rows, "training rows") if self.dense else self._share(self.n_entries, "entries")
        keep = slice(None) if self.trainer.is_global_zero else share
        if self.held != keep or (self.dense and self.train_x is None):
            self.hold(keep)
        mine = slice(None) if self.held == share else share
        hidden = self.hidden if self.held == share else self.hidden.select(self._share(self.n_hidden, "hidden entries"))
        self.batches = {"hidden": hidden.to(device, dtype).batch()}
        if not self.dense:
            self.batches["train"] = self.entries.select(mine).to(device, dtype).batch()
        else:
            x, y = self.train_x[mine].to(device, dtype), self.train_y[share].to(device)
            self.batches["train"] = self._rows(x, y, share, self.n_rows)
            val = self._share(len(self.val_x), "validation rows")
            x, y = self.val_x[val].to(device, dtype), self.val_y[val].to(device)
            self.batches["val"] = self._rows(x, y, val, len(self.val_x))
        for batch in self.batches.values():
            if (batch["value"] if "value" in batch else batch["x"]).isinf().any():  # NaN: a missing entry
                raise LabError(f"{self.source}: values do not fit in {dtype} once normalised (too large)")

    def hold(self, rows: slice) -> None:
        """Keep ``rows`` of the training rows (or entries): all of them, or this process's share, with its share of
        the hidden entries; drop the rest, and the file's array."""
        if self.held != slice(None):
            raise LabError("this DataModule holds one process's share of the data: make a new one for another Trainer")
        if self.dense:
            self.train_x = self.normalised_rows(rows) if self.train_x is None else self.train_x[rows].clone()
            self.features = None
        else:
            self.entries = self.entries.select(rows).clone()
        if rows != slice(None):
            self.hidden = self.hidden.select(self._share(self.n_hidden, "hidden entries")).clone()
        self.held = rows

    def _share(self, n: int, what: str) -> slice:
        """This process's contiguous share of ``n`` rows or entries (all of them on one device); every process needs
        one of each kind it has (``what``), for the metrics gathered over all of them."""
        rank, world = self.trainer.global_rank, self.trainer.world_size
        if world > n > 0:
            raise LabError(f"{n} {what} cannot be shared between {world} processes: use fewer devices")
        return slice(n * rank // world, n * (rank + 1) // world)

    def _rows(self, x: torch.Tensor, y: torch.Tensor, rows: slice, split_rows: int) -> Batch:
        batch = {"x": x, "y": y, "rows": rows, "split_rows": split_rows}
        if self.missing:
            observed = ~x.isnan()
            batch |= {"observed": observed, "observed_x": x[observed]}
        return batch

    def train_dataloader(self) -> FullBatch:
        """``steps_per_epoch`` steps, lowered to a divisor of ``trainer.max_steps``: the last step then ends an epoch,
        whose validation measures the final weights."""
        max_steps = self.trainer.max_steps
        return FullBatch(
            self.batches["train"], math.gcd(self.steps_per_epoch, max_steps) if max_steps > 0 else self.steps_per_epoch
        )

    def val_dataloader(self) -> list[FullBatch]:
        """The hidden entries, if any (the factorisation's validation); else loader 0 measures the training rows and
        loader 1 the validation rows (if any): after each epoch, both with the same weights, so the last numbers are
        those of the final weights."""
        if self.n_hidden:
            return [FullBatch(self.batches["hidden"])]
        if not self.dense:
            return []  # nothing hidden, and no rows to classify
        splits = ["train", "val"] if len(self.val_x) else ["train"]
        return [FullBatch(self.batches[split]) for split in splits]

    def predict_dataloader(self) -> FullBatch:
        """The entries a factorisation fills in: those training did not see (missing, or hidden), by their row and
        column in the matrix it factorised (those of the rows or entries this process holds)."""
        if not self.dense:
            row, col = self.hidden.row, self.hidden.col
        else:
            row, col = self.train_x.isnan().nonzero().unbind(dim=1)
            row += self.held.start or 0
        return FullBatch({"row": row, "col": col, "source": self.source})

    def transfer_batch_to_device(self, batch: Batch, device: torch.device, dataloader_idx: int) -> Batch:
        return batch  # already there (see setup)


class TableDataModule(FullBatchDataModule):
    """A CSV, ``.npy`` or ``.pt`` file of numeric features, with an optional label column; Iris by default.

    Args:
        path: the file; default: UCI's ``iris.data``, shipped with this package.
        label_column: the label column's index; ``auto``: the last column when it is not numeric; ``null``: none.
        preprocessing: ``centre`` (subtract the column means: Exercise 1), ``divide_by_variance`` (``(x - mean) /
            var``, the lab's Exercise 2), ``standardise`` (divide by the standard deviation) or ``none``.
        stats_rows: the rows the means and spreads come from: ``all`` (the lab normalises before it splits) or
            ``train`` (the textbook's choice: validation rows stay unseen).
        val_size: rows held out for validation (the lab holds out 50 of 150).
        split_seed: seed of the shuffle before the split (0 gives the lab's ``df.sample(frac=1, random_state=0)``),
            and of the entries hidden by ``holdout``.
        steps_per_epoch: full-batch gradient steps per Lightning epoch (each of the lab's "epochs" is one step),
            lowered to a divisor of ``trainer.max_steps``. Validation, checkpoints and the divergence check come once
            per Lightning epoch.
        allow_missing: empty cells and NaN are missing entries, which the factorisation leaves out of its loss and
            fills in; false: they are refused.
        holdout: the fraction of the observed entries hidden from training, on which validation measures the
            factorisation's RMSE.
    """

    def __init__(
        self,
        path: str | None = None,
        label_column: LabelColumn = "auto",
        preprocessing: Preprocessing = "centre",
        stats_rows: Literal["all", "train"] = "all",
        val_size: NonNegativeInt = 0,
        split_seed: int = 0,
        steps_per_epoch: PositiveInt = 1,
        allow_missing: bool = False,
        holdout: Holdout = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        table = read_data(path if path is not None else packaged_iris(), label_column, allow_missing=allow_missing)
        # The packaged iris.data has no header, but UCI names its columns: a model trained on it then matches the
        # columns of a file to classify by name too.
        names = table.feature_names if table.has_header else IRIS_FEATURES if path is None else None
        self.prepare(
            table.features, table.labels, names, str(table.path), preprocessing, stats_rows, val_size, split_seed,
            steps_per_epoch, holdout,
        )  # fmt: skip

    def predict_dataloader(self) -> FullBatch:
        """The file's rows to classify, unnormalised (the model applies its own training data's statistics), with
        their line numbers and the header's names, by which the model orders the columns; and the entries a
        factorisation fills in."""
        table = read_data(Path(self.source), self.hparams.label_column, allow_missing=self.hparams.allow_missing)
        return FullBatch(
            {
                "x": torch.from_numpy(np.require(table.features, requirements=["W"])),  # a memory map is copied
                "line": table.lines,
                "columns": table.feature_names if table.has_header else None,
                **super().predict_dataloader().batch,
            }
        )
