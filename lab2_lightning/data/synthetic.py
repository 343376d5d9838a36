"""A synthetic low-rank-plus-noise matrix, to try the factorisation at any size without a data file."""

from __future__ import annotations

import math

import torch
from jsonargparse.typing import NonNegativeFloat, PositiveInt

from lab2_lightning.data.datamodule import Entries, FullBatchDataModule, Holdout, Preprocessing
from lab2_lightning.errors import LabError

CHUNK = 1 << 20  # entries drawn at a time: the factors' rows gathered for them stay small


class SyntheticDataModule(FullBatchDataModule):
    """``A = X Yᵀ / sqrt(rank) + noise · E``, with X (rows x rank), Y (cols x rank) and E standard normal, drawn
    from a generator of its own: the same matrix whatever ``seed_everything`` says. Dense, or (``entries`` given) as
    that many entries at distinct places drawn uniformly, as (row, column, value) triples: a matrix with most of
    its entries missing, at sizes no dense matrix fits.

    Args:
        rows: rows of A.
        cols: columns of A.
        rank: rank of the signal part.
        noise: standard deviation of the added noise.
        seed: seed of the matrix's generator.
        entries: how many entries are observed; null: all of them, held densely.
        preprocessing: as for :class:`~lab2_lightning.data.TableDataModule` (``centre`` or ``none`` with
            ``entries``).
        holdout: the fraction of the observed entries hidden from training, on which validation measures the RMSE.
        split_seed: seed of the choice of hidden entries.
        steps_per_epoch: full-batch gradient steps per Lightning epoch.
    """

    def __init__(
        self,
        rows: PositiveInt = 2000,
        cols: PositiveInt = 200,
        rank: PositiveInt = 10,
        noise: NonNegativeFloat = 0.1,
        seed: int = 0,
        entries: PositiveInt | None = None,
        preprocessing: Preprocessing = "centre",
        holdout: Holdout = 0.0,
        split_seed: int = 0,
        steps_per_epoch: PositiveInt = 1,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        if rank > min(rows, cols):
            raise LabError(f"data.rank must be at most min(rows, cols) = {min(rows, cols)}, got {rank}")
        draws = torch.Generator().manual_seed(seed)
        X = torch.randn(rows, rank, generator=draws, dtype=torch.float64)
        Y = torch.randn(cols, rank, generator=draws, dtype=torch.float64)
        source = f"synthetic {rows}x{cols} rank {rank} noise {noise} seed {seed}"
        if entries is None:
            A = torch.randn(rows, cols, generator=draws, dtype=torch.float64).mul_(noise)
            A.addmm_(X, Y.T, alpha=1 / math.sqrt(rank))
            self.prepare(A.numpy(), None, None, source, preprocessing, "all", 0, split_seed, steps_per_epoch, holdout)
            return
        if entries > rows * cols:
            raise LabError(f"data.entries {entries}: more than the matrix's {rows} x {cols} = {rows * cols:,} entries")
        if preprocessing not in ("centre", "none"):
            raise LabError(f"data.preprocessing {preprocessing}: a sample of entries takes centre or none")
        # Distinct places: draw a few more than asked, drop repeats, keep a random choice of the rest.
        places = torch.randint(rows * cols, (entries + entries // 10 + 100,), generator=draws).unique()
        while len(places) < entries:  # only when most of the matrix is asked for
            places = torch.cat([places, torch.randint(rows * cols, (entries,), generator=draws)]).unique()
        places = places[torch.randperm(len(places), generator=draws)[:entries]].sort().values
        row, col = places // cols, places % cols
        value = torch.cat(
            [(X[r] * Y[c]).sum(dim=1) for r, c in zip(row.split(CHUNK), col.split(CHUNK), strict=True)]
        ).div_(math.sqrt(rank))
        value.add_(torch.randn(entries, generator=draws, dtype=torch.float64), alpha=noise)
        self.prepare_entries(
            Entries(row, col, value), (rows, cols), f"{source}, {entries} entries", preprocessing, holdout,
            split_seed, steps_per_epoch,
        )  # fmt: skip
