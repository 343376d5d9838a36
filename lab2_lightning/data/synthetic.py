"""A synthetic low-rank-plus-noise matrix, so the factorisation can be tried at any size without a data file."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lab2_lightning.utils.errors import LabError


@dataclass(frozen=True)
class SyntheticMatrix:
    """``A = X Yᵀ / sqrt(rank) + noise · E`` with X (rows x rank), Y (cols x rank) and E standard normal.

    Its own seed makes the matrix the same whatever ``seed_everything`` says, so runs with different seeds
    factorise the same data.

    Args:
        rows: m.
        cols: n.
        rank: rank of the signal part.
        noise: standard deviation of the added noise.
        seed: seed of the matrix's own random generator.
    """

    rows: int = 2000
    cols: int = 200
    rank: int = 10
    noise: float = 0.1
    seed: int = 0

    def generate(self) -> torch.Tensor:
        """The matrix, float64."""
        if min(self.rows, self.cols, self.rank) < 1 or self.rank > min(self.rows, self.cols):
            raise LabError(f"synthetic matrix needs rows, cols >= rank >= 1, got {self}")
        if not (math.isfinite(self.noise) and self.noise >= 0):
            raise LabError(f"synthetic noise must be a number >= 0, got {self.noise}")
        generator = torch.Generator().manual_seed(self.seed)
        X = torch.randn(self.rows, self.rank, generator=generator, dtype=torch.float64)
        Y = torch.randn(self.cols, self.rank, generator=generator, dtype=torch.float64)
        A = torch.randn(self.rows, self.cols, generator=generator, dtype=torch.float64).mul_(self.noise)
        return A.addmm_(X, Y.T, alpha=1 / math.sqrt(self.rank))
