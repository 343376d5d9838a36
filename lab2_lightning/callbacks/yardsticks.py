"""Exercise 1's yardsticks as a callback: the Eckart–Young optimum, PCA, and how GD's U relates to it.

The module only factorises; everything that compares its factors with the data's own SVD needs the whole data
matrix, which the callback reads from ``trainer.datamodule`` (all rows, also under DDP where the module sees a
shard), as Lightning's autoencoder example's ``ImageSampler`` reads its images.
"""

from __future__ import annotations

from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

from lab2_lightning.callbacks.figures import pca_vs_gd_figure
from lab2_lightning.models.factorisation import LowRankFactorisation
from lab2_lightning.models.linalg import linear_map_residual, pca_scores, principal_angles, svd_optimum
from lab2_lightning.utils.errors import LabError


class EckartYoungComparison(Callback):
    """After training, each member's distance to the rank-r optimum and the angles between its U and the PCA scores.

    Per member: ``svd_loss`` (the least loss of any rank-r approximation), ``relative_gap`` (GD's loss above it,
    relative; null at full rank, where the optimum is 0), ``principal_angles_deg`` between span(U) and the span
    of the first r principal components, and ``map_residual``, the relative residual of the best linear map from
    U to the PCA scores: final numbers, which :class:`~.summary.RunSummary` logs with the module's. The figure
    ``pca_vs_gd`` shows the first member: the data on the first two principal axes beside the rows of its U.

    Args:
        svd: how the optimum is computed: ``exact``, ``randomized`` (``torch.svd_lowrank``) or ``auto``
            (randomized when the smaller side of A exceeds 1000).
        figure: log the PCA figure of the first member.
    """

    def __init__(self, svd: Literal["auto", "exact", "randomized"] = "auto", figure: bool = True) -> None:
        self.svd = svd
        self.figure = figure
        self.results: list[dict[str, Any]] = []

    def _matrix(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> torch.Tensor:
        data = trainer.datamodule
        if data is None or not hasattr(data, "train_x"):
            raise LabError("EckartYoungComparison needs a DataModule with the whole matrix as train_x")
        return data.train_x.to(pl_module.device, torch.float64)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not isinstance(pl_module, LowRankFactorisation):
            raise LabError(f"EckartYoungComparison compares factorisations, not a {type(pl_module).__name__}")
        A = self._matrix(trainer, pl_module)
        optimum = {rank: svd_optimum(A, rank, self.svd) for rank in sorted(set(pl_module.ranks))}
        scores = {rank: pca_scores(A, rank, optimum[rank][1]) for rank in optimum}
        self.results = []
        for b, (run, rank) in enumerate(zip(pl_module.member_results(), pl_module.ranks, strict=True)):
            U = pl_module.factors(b)[0].double()
            svd_loss, method = optimum[rank]
            self.results.append(
                {
                    "svd_loss": svd_loss,
                    "svd_method": method,
                    # At full rank the optimum is 0 and a relative gap means nothing: null, not NaN.
                    "relative_gap": (run["gd_loss"] - svd_loss) / svd_loss if svd_loss > 0 else None,
                    "principal_angles_deg": torch.rad2deg(principal_angles(U, scores[rank])).tolist(),
                    "map_residual": linear_map_residual(U, scores[rank]),
                }
            )
        loggers = pl_module.member_loggers
        if loggers is None:
            return
        if self.figure and trainer.is_global_zero:
            rank = pl_module.ranks[0]
            figure = pca_vs_gd_figure(
                scores[rank][:, :2].cpu().numpy(),
                pl_module.factors(0)[0].double().cpu().numpy(),
                trainer.datamodule.train_y.numpy(),
                trainer.datamodule.class_names,
                card=True,
            )
            loggers.figure(0, "pca_vs_gd", figure, trainer.global_step)

    def member_results(self) -> list[dict[str, Any]]:
        """Each member's yardstick numbers, merged with the module's own by :class:`~.summary.RunSummary`."""
        return self.results
