"""A synthetic low-rank-plus-noise matrix, to try the factorisation at any size without a data file."""

from __future__ import annotations

import math

import torch
from jsonargparse.typing import NonNegativeFloat, PositiveInt

from lab2_lightning.data.datamodule import FullBatchDataModule, Preprocessing
from lab2_lightning.errors import LabError


class SyntheticDataModule(FullBatchDataModule):
    """``A = X Yᵀ / sqrt(rank) + noise · E``, with X (rows x rank), Y (cols x rank) and E standard normal, drawn
    from a generator of its own: the same matrix whatever ``seed_everything`` says.

    Args:
        rows: rows of A.
        cols: columns of A.
        rank: rank of the signal part.
        noise: standard deviation of the added noise.
        seed: seed of the matrix's generator.
        preprocessing: as for :class:`~lab2_lightning.data.TableDataModule`.
        steps_per_epoch: full-batch gradient steps per Lightning epoch.
    """

    def __init__(
        self,
        rows: PositiveInt = 2000,
        cols: PositiveInt = 200,
        rank: PositiveInt = 10,
        noise: NonNegativeFloat = 0.1,
        seed: int = 0,
        preprocessing: Preprocessing = "centre",
        steps_per_epoch: PositiveInt = 1,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        if rank > min(rows, cols):
            raise LabError(f"data.rank must be at most min(rows, cols) = {min(rows, cols)}, got {rank}")
        draws = torch.Generator().manual_seed(seed)
        X = torch.randn(rows, rank, generator=draws, dtype=torch.float64)
        Y = torch.randn(cols, rank, generator=draws, dtype=torch.float64)
        A = (
            torch.randn(rows, cols, generator=draws, dtype=torch.float64)
            .mul_(noise)
            .addmm_(X, Y.T, alpha=1 / math.sqrt(rank))
        )
        source = f"synthetic {rows}x{cols} rank {rank} noise {noise} seed {seed}"
        self.prepare(A.numpy(), None, None, source, preprocessing, "all", 0, 0, steps_per_epoch)
