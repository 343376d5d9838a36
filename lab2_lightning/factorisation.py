"""Exercise 1 as a LightningModule: A ≈ U Vᵀ by plain gradient descent, beside the SVD optimum and PCA."""

from __future__ import annotations

import math
from typing import Any, Literal

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn

from lab2_lightning.analysis import linear_map_residual, pca_scores, principal_angles, svd_optimum_loss
from lab2_lightning.datamodule import Batch
from lab2_lightning.errors import LabError
from lab2_lightning.figures import pca_vs_gd_figure
from lab2_lightning.lowrank import low_rank_squared_error
from lab2_lightning.steps import check_lr, gradient_step, logging_step
from lab2_lightning.tb_logging import log_figure, log_final_scalars


class LowRankFactorisation(pl.LightningModule):
    """Factorise the data matrix A (rows x features) as ``U @ V.T`` with U (rows x rank), V (features x rank).

    The loss is the lab's ``mse_loss(U @ V.T, A, reduction="sum")`` and every training step is one plain gradient
    step (SGD without momentum) on the whole matrix: the lab's "epoch". The dtype comes from the Trainer's
    ``precision`` (the lab's float64 is ``64-true``), never from this module.

    Seed contract: after ``torch.manual_seed(S)``, U and V are ``torch.rand(rows, rank)`` and then
    ``torch.rand(features, rank)``, as in the lab's ``gd_factorise_ad`` (:mod:`lab2_lightning.reference`).

    Args:
        n_rows: rows of A (linked from the data by the CLI).
        n_features: columns of A (linked from the data by the CLI).
        rank: rank r of the factorisation, 1 <= r <= min(rows, features).
        lr: learning rate of the plain gradient step (the lab's 0.01).
        gradient: ``autograd`` differentiates ``mse_loss`` as the lab does; ``closed_form`` uses
            :class:`~lab2_lightning.lowrank.LowRankSquaredError`, the same loss and gradients with far less memory
            traffic, for large matrices.
        class_names: names of the classes, used only to colour the PCA figure (linked from the data).
    """

    def __init__(
        self,
        n_rows: int = 150,
        n_features: int = 4,
        rank: int = 2,
        lr: float = 0.01,
        gradient: Literal["autograd", "closed_form"] = "autograd",
        class_names: list[str] | None = None,
    ) -> None:
        super().__init__()
        if not 1 <= rank <= min(n_rows, n_features):
            raise LabError(
                f"model.rank must be between 1 and min(rows, features) = {min(n_rows, n_features)}, got {rank}"
            )
        check_lr(lr)
        self.save_hyperparameters()
        self.automatic_optimization = False  # one plain step per batch, without Lightning's closure machinery
        self.U = nn.Parameter(torch.rand(n_rows, rank))
        self.V = nn.Parameter(torch.rand(n_features, rank))
        self.svd_loss = math.nan

    def reconstruction_loss(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """The lab's loss on the given rows of A: ``mse_loss(U[rows] @ V.T, x, reduction="sum")``."""
        if self.hparams.gradient == "closed_form":
            return low_rank_squared_error(self.U[rows], self.V, x)
        return F.mse_loss(self.U[rows] @ self.V.T, x, reduction="sum")

    def on_fit_start(self) -> None:
        A = self.trainer.datamodule.train_x
        self.svd_loss = svd_optimum_loss(A.to(torch.float64), self.hparams.rank)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        loss = self.reconstruction_loss(batch["x"].to(self.U.dtype), batch["index"])
        gradient_step(self, loss)
        if logging_step(self):
            self.log("train/loss", loss, prog_bar=True, reduce_fx="sum", sync_dist=True)
            self.log("train/svd_loss", self.svd_loss)
            if self.svd_loss > 0:
                gap = (loss.detach() - self.svd_loss) / self.svd_loss
                self.log("train/relative_gap", gap, reduce_fx="sum", sync_dist=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    @torch.no_grad()
    def results(self) -> dict[str, Any]:
        """The final numbers of Exercise 1 for the full matrix of the attached DataModule."""
        data = self.trainer.datamodule
        A = data.train_x.to(torch.float64)
        U, V = self.U.detach().cpu().to(torch.float64), self.V.detach().cpu().to(torch.float64)
        rank = self.hparams.rank
        gd_loss = float(F.mse_loss(U @ V.T, A, reduction="sum"))
        svd_loss = svd_optimum_loss(A, rank)
        scores = pca_scores(A, rank)
        return {
            "rank": rank,
            "lr": self.hparams.lr,
            "epochs": self.trainer.global_step,
            "gd_loss": gd_loss,
            "svd_loss": svd_loss,
            # At full rank the optimum is 0 and a relative gap means nothing: null, not NaN.
            "relative_gap": (gd_loss - svd_loss) / svd_loss if svd_loss > 0 else None,
            "principal_angles_deg": torch.rad2deg(principal_angles(U, scores)).tolist(),
            "map_residual": linear_map_residual(U, scores),
        }

    def on_train_end(self) -> None:
        """Log the PCA-vs-U figure and the final comparison numbers to TensorBoard."""
        final = self.results()
        scalars = {
            "final/gd_loss": final["gd_loss"],
            "final/svd_loss": final["svd_loss"],
            "final/relative_gap": final["relative_gap"],
            "final/max_principal_angle_deg": max(final["principal_angles_deg"]),
            "final/map_residual": final["map_residual"],
        }
        log_final_scalars(self.trainer, {k: v for k, v in scalars.items() if v is not None})
        data = self.trainer.datamodule
        A = data.train_x.to(torch.float64)
        figure = pca_vs_gd_figure(
            pca_scores(A, min(2, self.hparams.rank)).numpy(),
            self.U.detach().cpu().double().numpy(),
            data.train_y.numpy(),
            data.class_names,
        )
        log_figure(self.trainer, "pca_vs_gd", figure)
