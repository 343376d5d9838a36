"""Exercise 1 as a LightningModule: A ≈ U Vᵀ by plain gradient descent, beside the SVD optimum and PCA."""

from __future__ import annotations

import math
from typing import Any, Literal

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn

from lab2_lightning.callbacks.figures import pca_vs_gd_figure
from lab2_lightning.callbacks.tb_logging import log_figure, log_scalars
from lab2_lightning.data.datamodule import Batch
from lab2_lightning.models.checkpoints import adopt_checkpoint_dtype
from lab2_lightning.models.linalg import auto_lr, linear_map_residual, pca_scores, principal_angles, svd_optimum
from lab2_lightning.models.lowrank import low_rank_squared_error
from lab2_lightning.models.steps import check_lr, full_batch_loss, gradient_step, logging_step
from lab2_lightning.utils.errors import LabError


class LowRankFactorisation(pl.LightningModule):
    """Factorise the data matrix A (rows x features) as ``U @ V.T`` with U (rows x rank), V (features x rank).

    The loss is the lab's ``mse_loss(U @ V.T, A, reduction="sum")`` and every training step is one plain gradient
    step (SGD without momentum) on the whole matrix: the lab's "epoch". The dtype comes from the Trainer's
    ``precision`` (the lab's float64 is ``64-true``), never from this module.

    Seed contract: after ``torch.manual_seed(S)``, U and V are ``torch.rand(rows, rank)`` and then
    ``torch.rand(features, rank)``, as in the lab's ``gd_factorise_ad`` (:mod:`lab2_lightning.models.reference`).

    Args:
        n_rows: rows of A (linked from the data by the CLI).
        n_features: columns of A (linked from the data by the CLI).
        rank: rank r of the factorisation, 1 <= r <= min(rows, features).
        lr: learning rate of the plain gradient step: the lab's 0.01, or ``auto``, a step stable from the start on
            any matrix (:func:`~lab2_lightning.models.linalg.auto_lr`). The lab's 0.01 diverges on most larger matrices.
        gradient: ``autograd`` differentiates ``mse_loss`` as the lab does; ``closed_form`` uses
            :class:`~lab2_lightning.models.lowrank.LowRankSquaredError`, the same loss and gradients with far less
            memory traffic, for large matrices.
        svd: how the Eckart–Young yardstick is computed: ``exact``, ``randomized`` (``torch.svd_lowrank``) or
            ``auto`` (randomized when the smaller side of A exceeds 1000).
        class_names: names of the classes, used only to colour the PCA figure (linked from the data).
    """

    def __init__(
        self,
        n_rows: int = 150,
        n_features: int = 4,
        rank: int = 2,
        lr: float | Literal["auto"] = 0.01,
        gradient: Literal["autograd", "closed_form"] = "autograd",
        svd: Literal["auto", "exact", "randomized"] = "auto",
        class_names: list[str] | None = None,
    ) -> None:
        super().__init__()
        if not 1 <= rank <= min(n_rows, n_features):
            raise LabError(
                f"model.rank must be between 1 and min(rows, features) = {min(n_rows, n_features)}, got {rank}"
            )
        if lr != "auto":
            check_lr(lr)
        self.save_hyperparameters()
        self.automatic_optimization = False  # one plain step per batch, without Lightning's closure machinery
        self.U = nn.Parameter(torch.rand(n_rows, rank))
        self.V = nn.Parameter(torch.rand(n_features, rank))
        self.svd_loss = math.nan
        self.svd_method = ""
        self.lr_used = lr if lr != "auto" else math.nan
        self._final: dict[str, Any] | None = None

    def reconstruction_loss(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """The lab's loss on the given rows of A: ``mse_loss(U[rows] @ V.T, x, reduction="sum")``."""
        if self.hparams.gradient == "closed_form":
            return low_rank_squared_error(self.U[rows], self.V, x)
        return F.mse_loss(self.U[rows] @ self.V.T, x, reduction="sum")

    def _full_matrix(self) -> torch.Tensor:
        """The whole of A (all ranks' rows), float64, on this module's device: for the yardsticks only."""
        return self.trainer.datamodule.train_x.to(self.device, torch.float64)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        if self.hparams.lr == "auto":
            self.lr_used = auto_lr(self.U, self.V, self.trainer.datamodule.train_x.to(self.device, self.U.dtype))
        return torch.optim.SGD(self.parameters(), lr=self.lr_used)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        adopt_checkpoint_dtype(self, checkpoint)

    def on_fit_start(self) -> None:
        self.svd_loss, self.svd_method = svd_optimum(self._full_matrix(), self.hparams.rank, self.hparams.svd)

    def on_train_start(self) -> None:
        # The step size in use: a resumed run restores it with the optimizer, whatever ``auto`` gives now.
        self.lr_used = self.trainer.optimizers[0].param_groups[0]["lr"]
        # A constant: written once, straight to the loggers, rather than through ``self.log`` at every step.
        log_scalars(self.trainer, {"train/svd_loss": self.svd_loss})

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        loss = self.reconstruction_loss(batch["x"].to(self.U.dtype), batch["index"])
        gradient_step(self, loss)
        if logging_step(self):
            total = full_batch_loss(self, loss)
            self.log("train/loss", total, prog_bar=True)
            if self.svd_loss > 0:
                self.log("train/relative_gap", (total - self.svd_loss) / self.svd_loss)
        return loss

    @torch.no_grad()
    def _analyse(self) -> tuple[dict[str, Any], torch.Tensor]:
        """The final numbers of Exercise 1, and the PCA scores they compare U with."""
        A = self._full_matrix()
        U, V = self.U.detach().double(), self.V.detach().double()
        rank = self.hparams.rank
        gd_loss = float(F.mse_loss(U @ V.T, A, reduction="sum"))
        if self.svd_method == "":  # not fitted: no cached optimum yet
            self.svd_loss, self.svd_method = svd_optimum(A, rank, self.hparams.svd)
        scores = pca_scores(A, rank, self.svd_method)
        results = {
            "rank": rank,
            "lr": self.lr_used,
            "lr_setting": self.hparams.lr,
            "gradient": self.hparams.gradient,
            "epochs": self.trainer.global_step,
            "gd_loss": gd_loss,
            "svd_loss": self.svd_loss,
            "svd_method": self.svd_method,
            # At full rank the optimum is 0 and a relative gap means nothing: null, not NaN.
            "relative_gap": (gd_loss - self.svd_loss) / self.svd_loss if self.svd_loss > 0 else None,
            "principal_angles_deg": torch.rad2deg(principal_angles(U, scores)).tolist(),
            "map_residual": linear_map_residual(U, scores),
        }
        return results, scores

    def results(self) -> dict[str, Any]:
        """The final numbers of Exercise 1 on the attached DataModule's full matrix (computed once after fit)."""
        if self._final is None:
            self._final, _ = self._analyse()
        return self._final

    def on_train_end(self) -> None:
        """Log the PCA-vs-U figure and the final comparison numbers to TensorBoard."""
        self._final, scores = self._analyse()
        scalars = {
            "final/gd_loss": self._final["gd_loss"],
            "final/svd_loss": self._final["svd_loss"],
            "final/relative_gap": self._final["relative_gap"],
            "final/max_principal_angle_deg": max(self._final["principal_angles_deg"]),
            "final/map_residual": self._final["map_residual"],
        }
        log_scalars(self.trainer, {k: v for k, v in scalars.items() if v is not None})
        if self.trainer.is_global_zero and self.trainer.loggers:
            figure = pca_vs_gd_figure(
                scores[:, :2].cpu().numpy(),
                self.U.detach().cpu().double().numpy(),
                self.trainer.datamodule.train_y.numpy(),
                self.trainer.datamodule.class_names,
            )
            log_figure(self.trainer, "pca_vs_gd", figure)
