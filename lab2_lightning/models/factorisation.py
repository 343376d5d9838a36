"""Exercise 1 as a LightningModule: A ≈ U Vᵀ by plain gradient descent, for several seeds (and ranks) at once."""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from lab2_lightning.models.full_batch import FullBatchGD, PlainGradientStep, check_lr, generator
from lab2_lightning.models.linalg import auto_lr
from lab2_lightning.models.lowrank import low_rank_squared_error, squared_norm
from lab2_lightning.utils.errors import LabError


def broadcast_members(seeds: list[int], ranks: list[int]) -> tuple[list[int], list[int]]:
    """Pair seeds with ranks: one of either goes with every one of the other; otherwise they pair one to one."""
    if len(ranks) == 1:
        ranks = ranks * len(seeds)
    elif len(seeds) == 1:
        seeds = seeds * len(ranks)
    elif len(seeds) != len(ranks):
        raise LabError(
            f"model.seeds ({len(seeds)}) and model.rank ({len(ranks)}) must pair one to one, or one be single"
        )
    return seeds, ranks


class LowRankFactorisation(FullBatchGD):
    """Factorise the data matrix A (rows x features) as ``U @ V.T`` with U (rows x rank), V (features x rank).

    The loss is the lab's ``mse_loss(U @ V.T, A, reduction="sum")`` and each step is one plain gradient
    step (SGD without momentum) on the whole matrix: the lab's "epoch". The dtype comes from the Trainer's
    ``precision`` (the lab's float64 is ``64-true``), never from this module.

    Members: ``U`` is (members x rows x R) and ``V`` (members x features x R), R the largest rank asked for. A member
    of a smaller rank r keeps columns r.. of its U and V at exactly zero: their gradients are zero, so they stay so.

    Seed contract: member b's U and V are ``torch.rand(rows, r)`` and then ``torch.rand(features, r)`` after
    ``torch.manual_seed(seeds[b])``, as in the lab's ``gd_factorise_ad`` (:mod:`lab2_lightning.models.reference`),
    drawn in float32 and widened to the Trainer's precision.

    Args:
        n_rows: rows of A (linked from the data by the CLI).
        n_features: columns of A (linked from the data by the CLI).
        rank: rank r of the factorisation, 1 <= r <= min(rows, features), or one rank per member.
        seeds: one seed per member; ``null``: one member, seeded by the run's ``seed_everything``.
        lr: learning rate of the plain gradient step: the lab's 0.01, or ``auto``, a step stable from the start on
            any matrix (:func:`~lab2_lightning.models.linalg.auto_lr`). The lab's 0.01 diverges on most larger
            matrices.
        gradient: ``autograd`` differentiates the lab's summed squared error; ``closed_form`` uses
            :func:`~lab2_lightning.models.lowrank.low_rank_squared_error`, the same loss and gradients from two skinny
            products with A, for large matrices.
    """

    def __init__(
        self,
        n_rows: int = 150,
        n_features: int = 4,
        rank: int | list[int] = 2,
        seeds: list[int] | None = None,
        lr: float | Literal["auto"] = 0.01,
        gradient: Literal["autograd", "closed_form"] = "autograd",
    ) -> None:
        super().__init__(seeds)
        ranks = [rank] if isinstance(rank, int) else list(rank)
        limit = min(n_rows, n_features)
        if not ranks or not all(1 <= r <= limit for r in ranks):
            raise LabError(f"model.rank must be between 1 and min(rows, features) = {limit}, got {rank}")
        if lr != "auto":
            check_lr(lr)
        self.seeds, self.ranks = broadcast_members(self.seeds, ranks)
        self.save_hyperparameters(logger=False)
        self.hparams["seeds"] = self.seeds  # the seeds actually drawn, for a checkpoint to rebuild the same members
        width = max(self.ranks)
        self.U = nn.Parameter(torch.zeros(self.n_members, n_rows, width))
        self.V = nn.Parameter(torch.zeros(self.n_members, n_features, width))
        with torch.no_grad():
            for b, (seed, r) in enumerate(zip(self.seeds, self.ranks, strict=True)):
                draws = generator(seed)
                self.U[b, :, :r] = torch.rand(n_rows, r, generator=draws)
                self.V[b, :, :r] = torch.rand(n_features, r, generator=draws)
        self.lr_used = lr if lr != "auto" else float("nan")
        self._a_sq_norm: tuple[torch.Tensor, torch.Tensor] | None = None

    def member_names(self) -> list[str]:
        if len(set(self.ranks)) == 1:
            return super().member_names()
        return [f"seed_{seed}_rank_{r}" for seed, r in zip(self.seeds, self.ranks, strict=True)]

    def factors(self, member: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Member ``member``'s U and V at its own rank (detached)."""
        r = self.ranks[member]
        return self.U[member, :, :r].detach(), self.V[member, :, :r].detach()

    def member_losses(self, batch: dict[str, Any]) -> torch.Tensor:
        """Each member's ``sum((U[rows] @ V.T - A[rows]) ** 2)`` on this rank's rows of A."""
        x = batch["x"].to(self.U.dtype)
        rows = batch["rows"]
        U = self.U if rows == slice(0, self.U.shape[1]) else self.U[:, rows]  # all rows: nothing to copy back
        if self.hparams.gradient == "closed_form":
            return low_rank_squared_error(U, self.V, x, a_sq_norm=self._squared_norm(x))
        if self.n_members == 1:
            # The lab's own expression on 2-D views: on Iris, cheaper than the batched products below.
            return F.mse_loss(U.squeeze(0) @ self.V.squeeze(0).T, x, reduction="sum")[None]
        return (U @ self.V.mT - x).square().sum((-2, -1))

    def _squared_norm(self, x: torch.Tensor) -> torch.Tensor:
        """‖A‖² of this rank's rows, computed once: the DataModule serves the same batch tensor every step."""
        if self._a_sq_norm is None or self._a_sq_norm[0] is not x:
            self._a_sq_norm = (x, squared_norm(x))
        return self._a_sq_norm[1]

    def configure_optimizers(self) -> PlainGradientStep:
        if self.hparams.lr == "auto":
            A = self.trainer.datamodule.train_x.to(self.device, self.U.dtype)
            self.lr_used = min(auto_lr(*self.factors(b), A) for b in range(self.n_members))
        return PlainGradientStep(self.parameters(), lr=self.lr_used)

    def on_train_start(self) -> None:
        super().on_train_start()
        # The step size in use: a resumed run restores it with the optimizer, whatever ``auto`` gives now.
        self.lr_used = self.trainer.optimizers[0].param_groups[0]["lr"]

    def teardown(self, stage: str) -> None:
        super().teardown(stage)
        self._a_sq_norm = None

    def member_results(self) -> list[dict[str, Any]]:
        """Each member's settings and the loss of its final weights (the lab's summed squared error)."""
        final = self.final_loss.tolist() if self.final_loss is not None else [None] * self.n_members
        return [
            {
                "seed": seed,
                "rank": rank,
                "lr": self.lr_used,
                "lr_setting": self.hparams.lr,
                "gradient": self.hparams.gradient,
                "epochs": self.trainer.global_step,
                "gd_loss": loss,
            }
            for seed, rank, loss in zip(self.seeds, self.ranks, final, strict=True)
        ]
