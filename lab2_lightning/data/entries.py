"""A matrix given by its observed entries, as (row, column, value) triples: one too large or too empty to hold
densely, such as ratings of items by users."""

from __future__ import annotations

from typing import Literal

import torch
from jsonargparse.typing import PositiveInt

from lab2_lightning.data.datamodule import Entries, FullBatchDataModule, Holdout
from lab2_lightning.data.reading import read_entries
from lab2_lightning.errors import LabError


def entries_of(path: str) -> tuple[Entries, tuple[int, int]]:
    """A triples file's entries and the shape they reach (the largest indices, plus one)."""
    read = read_entries(path)
    entries = Entries(torch.from_numpy(read.rows), torch.from_numpy(read.cols), torch.from_numpy(read.values))
    return entries, read.shape


class EntriesDataModule(FullBatchDataModule):
    """The observed entries of a matrix, read from a file of (row, column, value) triples: a CSV of three columns
    (a header is optional), a ``.npz`` with arrays ``row``, ``col`` and ``value``, or a ``.pt`` holding a dict of
    such tensors. Rows and columns are numbered from 0; every entry not listed is missing.

    Args:
        path: the triples file.
        shape: the matrix's (rows, columns); null: the largest row and column listed, plus one.
        preprocessing: ``centre`` (subtract each column's mean over its observed entries) or ``none``.
        holdout: the fraction of the entries hidden from training, on which validation measures the RMSE.
        split_seed: seed of the choice of hidden entries.
        steps_per_epoch: full-batch gradient steps per Lightning epoch.
    """

    def __init__(
        self,
        path: str,
        shape: tuple[PositiveInt, PositiveInt] | None = None,
        preprocessing: Literal["centre", "none"] = "centre",
        holdout: Holdout = 0.0,
        split_seed: int = 0,
        steps_per_epoch: PositiveInt = 1,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        entries, reached = entries_of(path)
        if shape is not None and (shape[0] < reached[0] or shape[1] < reached[1]):
            raise LabError(f"data.shape {list(shape)}: {path} lists entries up to row {reached[0] - 1}, column "
                           f"{reached[1] - 1} (numbered from 0)")  # fmt: skip
        self.prepare_entries(entries, shape or reached, path, preprocessing, holdout, split_seed, steps_per_epoch)
