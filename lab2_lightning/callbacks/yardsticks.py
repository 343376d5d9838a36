"""Exercise 1's yardsticks: the Eckart–Young optimum, PCA, and how GD's U relates to them.

They need the whole data matrix, which the callback reads from ``trainer.datamodule`` (all rows, also under DDP,
where the module sees a share), as Lightning's autoencoder example's ``ImageSampler`` reads its images.
"""

from __future__ import annotations

from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

from lab2_lightning.errors import LabError
from lab2_lightning.models.linalg import linear_map_residual, pca_scores, principal_angles, svd_optimum

# A relative gap is meaningless where the optimum is zero to rounding (the rank reaches the data's own): below this
# fraction of ||A||².
EXACT = 1e-12


class EckartYoungComparison(Callback):
    """After training, per member: ``svd_loss`` (the least loss of any rank-r approximation), ``relative_gap`` (GD's
    loss above it; null where the optimum is zero to rounding), the principal angles between span(U) and the first r
    principal axes, and ``map_residual``, the relative residual of the best linear map from U to the PCA scores. The
    first member's U and PCA scores are kept for Figure 1.

    Args:
        svd: ``exact``, ``randomized`` (``torch.svd_lowrank``) or ``auto`` (randomized above 1000 rows and columns).
    """

    def __init__(self, svd: Literal["auto", "exact", "randomized"] = "auto") -> None:
        self.svd = svd
        self.results: list[dict[str, Any]] = []

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not hasattr(pl_module, "U"):
            raise LabError(f"EckartYoungComparison compares factorisations, not a {type(pl_module).__name__}")
        A = trainer.datamodule.train_x.to(pl_module.device, torch.float64)
        optimum = {rank: svd_optimum(A, rank, self.svd) for rank in set(pl_module.ranks)}
        scores = {rank: pca_scores(A, rank, optimum[rank][1]) for rank in optimum}
        self.results = []
        for U, rank in zip(pl_module.U, pl_module.ranks, strict=True):
            U = U.detach().double()
            svd_loss, method = optimum[rank]
            self.results.append(
                {
                    "svd_loss": svd_loss,
                    "svd_method": method,
                    "principal_angles_deg": torch.rad2deg(principal_angles(U, scores[rank])).tolist(),
                    "map_residual": linear_map_residual(U, scores[rank]),
                }
            )
        first = pl_module.U[0].detach().double()
        self.figure = {"U": first[:, :2].tolist(), "pca": scores[pl_module.ranks[0]][:, :2].tolist()}
        self.squared_norm = float(A.square().sum())

    def member_results(self, runs: list[dict[str, Any]]) -> None:
        """Add the yardsticks to the module's results, member by member."""
        for run, extra in zip(runs, self.results, strict=True):
            gap = run["gd_loss"] - extra["svd_loss"]
            exact = extra["svd_loss"] <= EXACT * self.squared_norm  # zero to rounding, on the data's own scale
            run.update(extra, relative_gap=None if exact else gap / extra["svd_loss"])
