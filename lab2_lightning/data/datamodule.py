"""The DataModule both exercises share: a table or matrix file (Iris by default), preprocessed, split, and served
as full batches, since every step of the lab is a plain gradient step on all rows."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from jsonargparse.typing import NonNegativeInt, PositiveInt

from lab2_lightning.data.reading import IRIS_FEATURES, LabelColumn, packaged_iris, read_data
from lab2_lightning.errors import LabError

# How features are normalised, column by column, as (x - shift) / scale. The lab's Exercise 2 divides by the
# variance, not the standard deviation: that is "divide_by_variance".
Preprocessing = Literal["centre", "divide_by_variance", "standardise", "none"]
Batch = dict[str, Any]


def preprocessing_stats(x: torch.Tensor, preprocessing: Preprocessing) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``(shift, scale)`` of ``preprocessing``: the column means (0 for ``none``), and 1, the (unbiased)
    variance or the standard deviation."""
    mean = x.mean(dim=0)
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
    constant = [names[j] for j in (x == x[:1]).all(dim=0).nonzero().flatten().tolist()]
    if preprocessing == "none" or not constant:
        return
    if len(constant) == x.shape[1]:
        raise LabError(f"{where}: every feature column is constant: there is nothing to factorise or learn")
    if preprocessing in ("divide_by_variance", "standardise"):
        raise LabError(
            f"{where}: feature column {', '.join(constant[:5])} is constant, and preprocessing {preprocessing} "
            "divides by its spread, 0; drop it or use data.preprocessing centre"
        )


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
    """A matrix of features (and class labels, if any), normalised, split into training and validation rows, and
    served whole. Subclasses say where the matrix comes from and call :meth:`prepare`.

    A batch is a dict: ``x`` (the rows' features, in the Trainer's precision, on its device), ``y`` (class ids, -1
    without labels), ``rows`` (a slice: the rows' positions in their split, so the factorisation can pick its rows
    of U) and ``split_rows`` (the split's size). Under DDP each process gets a contiguous share of the rows.
    """

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
    ) -> None:
        """Normalise and split the data. Done in ``__init__``, not ``setup``, so that the sizes exist when the CLI
        links them into the model's arguments."""
        n = len(features)
        if val_size >= n:
            raise LabError(f"data.val_size must be below the number of rows, {n}; got {val_size}")
        self.source, self.feature_names, self.steps_per_epoch = source, feature_names, steps_per_epoch
        self.class_names = sorted(set(labels)) if labels is not None else []
        ids = {name: k for k, name in enumerate(self.class_names)}
        y = torch.tensor([ids[label] for label in labels] if labels is not None else [-1] * n)
        # np.random.RandomState(seed).permutation is what the lab's df.sample(frac=1, random_state=seed) draws.
        order = torch.from_numpy(np.random.RandomState(split_seed).permutation(n) if val_size else np.arange(n))
        train, val = order[: n - val_size], order[n - val_size :]
        x = torch.from_numpy(features)
        stats_from = x if stats_rows == "all" else x[train]
        names = feature_names or [f"x{j + 1}" for j in range(x.shape[1])]
        check_columns(stats_from, preprocessing, names, source)
        self.shift, self.scale = preprocessing_stats(stats_from, preprocessing)
        x = (x - self.shift) / self.scale
        self.train_x, self.train_y, self.val_x, self.val_y = x[train], y[train], x[val], y[val]

    @property
    def n_rows(self) -> int:
        return len(self.train_x)

    @property
    def n_features(self) -> int:
        return self.train_x.shape[1]

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def setup(self, stage: str) -> None:
        """The data in the Trainer's precision, on its device, once: every step then reuses them."""
        dtype = torch.float64 if str(self.trainer.precision).startswith("64") else torch.float32
        splits = {"train": (self.train_x.to(dtype), self.train_y), "val": (self.val_x.to(dtype), self.val_y)}
        for x, _ in splits.values():
            bad = (~torch.isfinite(x)).nonzero()
            if len(bad):
                column = bad[0, 1].item() + 1
                raise LabError(f"{self.source}: column {column} does not fit in {dtype} once normalised (too large)")
        device = self.trainer.strategy.root_device
        self.batches = {split: self._share(x.to(device), y.to(device)) for split, (x, y) in splits.items()}

    def _share(self, x: torch.Tensor, y: torch.Tensor) -> Batch:
        """This process's contiguous share of a split's rows (all of them on one device)."""
        rank, world = self.trainer.global_rank, self.trainer.world_size
        if world > len(x) > 0:
            raise LabError(f"{len(x)} rows cannot be shared between {world} processes: use fewer devices")
        start, stop = len(x) * rank // world, len(x) * (rank + 1) // world
        return {"x": x[start:stop], "y": y[start:stop], "rows": slice(start, stop), "split_rows": len(x)}

    def train_dataloader(self) -> FullBatch:
        """``steps_per_epoch`` steps, lowered to a divisor of ``trainer.max_steps``: the last step then ends an epoch,
        whose validation measures the final weights."""
        max_steps = self.trainer.max_steps
        return FullBatch(
            self.batches["train"], math.gcd(self.steps_per_epoch, max_steps) if max_steps > 0 else self.steps_per_epoch
        )

    def val_dataloader(self) -> list[FullBatch]:
        """Loader 0 measures the training split, loader 1 the validation split (if any): after each epoch, both are
        measured with the same weights, so the last numbers are those of the final weights."""
        splits = ["train", "val"] if len(self.val_x) else ["train"]
        return [FullBatch(self.batches[split]) for split in splits]

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
        split_seed: seed of the shuffle before the split; 0 gives the lab's ``df.sample(frac=1, random_state=0)``.
        steps_per_epoch: full-batch gradient steps per Lightning epoch (each of the lab's "epochs" is one step),
            lowered to a divisor of ``trainer.max_steps``. Validation, checkpoints and the divergence check come once
            per Lightning epoch.
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
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        table = read_data(path if path is not None else packaged_iris(), label_column)
        # The packaged iris.data has no header, but UCI names its columns: a model trained on it then matches the
        # columns of a file to classify by name too.
        names = table.feature_names if table.has_header else IRIS_FEATURES if path is None else None
        self.prepare(
            table.features, table.labels, names, str(table.path), preprocessing, stats_rows, val_size, split_seed,
            steps_per_epoch,
        )  # fmt: skip

    def predict_dataloader(self) -> FullBatch:
        """The file's rows to classify, unnormalised (the model applies its own training data's statistics), with
        their line numbers and the header's names, by which the model orders the columns."""
        table = read_data(Path(self.source), self.hparams.label_column)
        return FullBatch(
            {
                "x": torch.from_numpy(table.features),
                "line": table.lines,
                "columns": table.feature_names if table.has_header else None,
                "source": self.source,
            }
        )
