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


def preprocessing_stats(x: torch.Tensor, preprocessing: Preprocessing) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``(shift, scale)`` of ``preprocessing``: each column's mean over its observed entries (0 for ``none``, and
    for a column with none), and 1, the (unbiased) variance or the standard deviation."""
    mean = torch.nanmean(x, dim=0).nan_to_num(0.0) if x.isnan().any() else x.mean(dim=0)  # nanmean copies x
    scale = {
        "centre": torch.ones_like(mean),
        "divide_by_variance": x.var(dim=0),
        "standardise": x.std(dim=0),
        "none": torch.ones_like(mean),
    }[preprocessing]
    return (torch.zeros_like(mean) if preprocessing == "none" else mean), scale


def check_columns(x: torch.Tensor, preprocessing: Preprocessing, names: list[str], where: str) -> None:
    """Refuse data that ``preprocessing`` turns into 0/0 or into nothing: a constant column divided by its spread
    (0, or a rounding error), or every column constant (centring leaves only zeros)."""
    if x.isnan().any():  # the observed entries' extremes
        lowest, highest = x.nan_to_num(math.inf).amin(dim=0), x.nan_to_num(-math.inf).amax(dim=0)
    else:
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


def check_observed(values: torch.Tensor, where: str) -> None:
    """Refuse training data that is all zeros once normalised (no observed entry, or each column constant)."""
    if not (values != 0).logical_and_(~values.isnan()).any():
        raise LabError(f"{where}: no observed entry differs from its column's mean: there is nothing to factorise")


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
    and ``observed_x`` (``x[observed]``). An entries batch has ``row``, ``col`` and ``value``. Under DDP each process
    gets a contiguous share of the rows, or of the entries.
    """

    train_x: torch.Tensor | None = None  # dense: the training rows, NaN where an entry is missing or hidden
    entries: Entries | None = None  # triples: the training entries

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
        """Split the rows, hide entries, normalise. Done in ``__init__``, not ``setup``, so that the sizes exist when
        the CLI links them into the model's arguments. The matrix keeps its file's dtype (float32 stays float32)
        and is copied once."""
        n = len(features)
        if val_size >= n:
            raise LabError(f"data.val_size must be below the number of rows, {n}; got {val_size}")
        self.source, self.feature_names, self.steps_per_epoch = source, feature_names, steps_per_epoch
        self.class_names = sorted(set(labels)) if labels is not None else []
        ids = {name: k for k, name in enumerate(self.class_names)}
        y = torch.tensor([ids[label] for label in labels] if labels is not None else [-1] * n)
        x = torch.from_numpy(np.require(features, requirements=["W", "C"]))  # a memory-mapped file is copied here
        train = torch.arange(n)
        if val_size:
            # np.random.RandomState(seed).permutation is what the lab's df.sample(frac=1, random_state=seed) draws.
            order = torch.from_numpy(np.random.RandomState(split_seed).permutation(n))
            train, val = order[: n - val_size], order[n - val_size :]
            self.train_x, self.train_y, self.val_x, self.val_y = x[train], y[train], x[val], y[val]
        else:
            self.train_x, self.train_y, self.val_x, self.val_y = x, y, x[:0], y[:0]
        self.missing = bool(self.train_x.isnan().any()) or holdout > 0
        self.hidden = Entries.none(x.dtype)
        if self.missing and preprocessing not in ("centre", "none"):
            raise LabError(f"data.preprocessing {preprocessing} needs every entry; with missing ones, centre or none")
        if holdout:
            observed = (~self.train_x.isnan()).flatten().nonzero().flatten()
            flat = observed[hide(len(observed), holdout, split_seed)]
            row, col = flat // x.shape[1], flat % x.shape[1]
            self.hidden = Entries(row, col, self.train_x[row, col])
            self.train_x[row, col] = x[train[row], col] = math.nan  # unseen by training and by the statistics
        stats_from = x if stats_rows == "all" else self.train_x
        names = feature_names or [f"x{j + 1}" for j in range(x.shape[1])]
        check_columns(stats_from, preprocessing, names, source)
        self.shift, self.scale = preprocessing_stats(stats_from, preprocessing)
        for part in (self.train_x, self.val_x):
            part.sub_(self.shift).div_(self.scale)
        self.hidden.value = (self.hidden.value - self.shift[self.hidden.col]) / self.scale[self.hidden.col]
        check_observed(self.train_x, source)

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
        self.shape, self.missing, self.hidden = shape, True, Entries.none(entries.value.dtype)
        if holdout:
            hidden = torch.zeros(len(entries), dtype=torch.bool)
            hidden[hide(len(entries), holdout, split_seed)] = True
            self.hidden, entries = entries.select(hidden), entries.select(~hidden)
        self.shift = column_means(entries, shape[1]) if preprocessing == "centre" else torch.zeros(shape[1])
        self.shift = self.shift.to(entries.value.dtype)
        self.scale = torch.ones_like(self.shift)
        entries.value = entries.value - self.shift[entries.col]
        self.hidden.value = self.hidden.value - self.shift[self.hidden.col]
        check_observed(entries.value, source)
        self.entries = entries

    @property
    def n_rows(self) -> int:
        return self.shape[0] if self.entries is not None else len(self.train_x)

    @property
    def n_features(self) -> int:
        return self.shape[1] if self.entries is not None else self.train_x.shape[1]

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def n_entries(self) -> int:
        """The entries held for training: every one of a dense matrix, the listed ones of triples."""
        return len(self.entries) if self.entries is not None else self.train_x.numel()

    @property
    def n_observed(self) -> int:
        """The training entries: what the factorisation's loss sums over."""
        return len(self.entries) if self.entries is not None else int((~self.train_x.isnan()).sum())

    def training_entries(self) -> Entries:
        """The entries the factorisation trains on, as triples."""
        if self.entries is not None:
            return self.entries
        row, col = (~self.train_x.isnan()).nonzero().unbind(dim=1)
        return Entries(row, col, self.train_x[row, col])

    def training_matrix(self) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        """The training matrix, dense, or sparse (zero where nothing is observed) with the observed entries'
        rows and columns."""
        if not self.missing:
            return self.train_x, None
        seen = self.training_entries()
        return observed_matrix(seen.row, seen.col, seen.value, (self.n_rows, self.n_features)), (seen.row, seen.col)

    @property
    def data_rms(self) -> float:
        """The root mean square of the training entries: the scale of the data, once normalised."""
        if self.missing:
            return float(self.training_entries().value.square().mean().sqrt())
        return float(torch.linalg.vector_norm(self.train_x) / math.sqrt(self.train_x.numel()))

    def setup(self, stage: str) -> None:
        """The data in the Trainer's precision, on its device, once: every step then reuses them."""
        dtype = torch.float64 if str(self.trainer.precision).startswith("64") else torch.float32
        device = self.trainer.strategy.root_device
        self.batches = {"hidden": self._share_entries(self.hidden.to(device, dtype))}
        if self.entries is not None:
            self.batches["train"] = self._share_entries(self.entries.to(device, dtype))
        else:
            for split, x, y in (("train", self.train_x, self.train_y), ("val", self.val_x, self.val_y)):
                self.batches[split] = self._share_rows(x.to(device, dtype), y.to(device))
        for batch in self.batches.values():
            if (batch["value"] if "value" in batch else batch["x"]).isinf().any():  # NaN: a missing entry
                raise LabError(f"{self.source}: values do not fit in {dtype} once normalised (too large)")

    def _share(self, n: int) -> slice:
        """This process's contiguous share of ``n`` rows or entries (all of them on one device)."""
        rank, world = self.trainer.global_rank, self.trainer.world_size
        if world > n > 0:
            raise LabError(f"{n} rows or entries cannot be shared between {world} processes: use fewer devices")
        return slice(n * rank // world, n * (rank + 1) // world)

    def _share_entries(self, entries: Entries) -> Batch:
        return entries.select(self._share(len(entries))).batch()

    def _share_rows(self, x: torch.Tensor, y: torch.Tensor) -> Batch:
        rows = self._share(len(x))
        batch = {"x": x[rows], "y": y[rows], "rows": rows, "split_rows": len(x)}
        if self.missing:
            observed = ~batch["x"].isnan()
            batch |= {"observed": observed, "observed_x": batch["x"][observed]}
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
        if len(self.hidden):
            return [FullBatch(self.batches["hidden"])]
        if self.entries is not None:
            return []  # nothing hidden, and no rows to classify
        splits = ["train", "val"] if len(self.val_x) else ["train"]
        return [FullBatch(self.batches[split]) for split in splits]

    def predict_dataloader(self) -> FullBatch:
        """The entries a factorisation fills in: those training did not see (missing, or hidden), by their row and
        column in the matrix it factorised."""
        if self.entries is not None:
            row, col = self.hidden.row, self.hidden.col
        else:
            row, col = self.train_x.isnan().nonzero().unbind(dim=1)
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
