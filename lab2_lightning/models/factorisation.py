"""Exercise 1: ``A ≈ U Vᵀ`` by plain gradient descent on the summed squared error, one member per seed (and
rank)."""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from jsonargparse.typing import PositiveFloat, PositiveInt
from torch import nn

from lab2_lightning.errors import LabError
from lab2_lightning.models.linalg import auto_lr
from lab2_lightning.models.seeded import SeededModule


class LowRankFactorisation(SeededModule):
    """The lab's ``gd_factorise_ad`` as a LightningModule; each training step is one of the lab's epochs.

    The lab's loop, and where each line went::

        U = torch.rand(m, r); V = torch.rand(n, r)     # __init__, per member, after manual_seed(seed)
        loss = mse_loss(U @ V.T, A, reduction="sum")   # member_losses
        loss.backward(); U -= lr * U.grad; ...         # Lightning, and PlainGradientStep

    U and V are drawn in float32 and widened to the Trainer's precision (the lab's float64 is ``64-true``).

    Args:
        n_rows: rows of A (linked from the data).
        n_features: columns of A (linked from the data).
        rank: the rank r, or one rank per seed.
        seeds: one member per seed; ``null``: one member, seeded by ``seed_everything``.
        lr: the step size: the lab's 0.01, or ``auto``, stable from the start on any matrix
            (:func:`~lab2_lightning.models.linalg.auto_lr`); 0.01 diverges on most matrices but Iris.
    """

    loss_name = "summed_squared_error"

    def __init__(
        self,
        n_rows: int = 150,
        n_features: int = 4,
        rank: PositiveInt | list[PositiveInt] = 2,
        seeds: list[int] | None = None,
        lr: PositiveFloat | Literal["auto"] = 0.01,
    ) -> None:
        ranks = [rank] if isinstance(rank, int) else list(rank)
        seeds = list(seeds) if seeds is not None else [torch.initial_seed()]
        if len(ranks) == 1:
            ranks *= len(seeds)
        elif len(seeds) == 1:
            seeds *= len(ranks)
        super().__init__(seeds)
        self.save_hyperparameters(logger=False)
        if len(ranks) != len(self.seeds) or max(ranks) > min(n_rows, n_features):
            raise LabError(
                f"model.rank {rank}: one rank, or one per seed, each at most min(rows, columns) = "
                f"{min(n_rows, n_features)}"
            )
        self.ranks = ranks
        self.U, self.V = nn.ParameterList(), nn.ParameterList()
        for seed, r in zip(self.seeds, self.ranks, strict=True):
            draws = torch.Generator().manual_seed(seed)
            self.U.append(torch.rand(n_rows, r, generator=draws))
            self.V.append(torch.rand(n_features, r, generator=draws))
        self.auto_lr: float | None = None
        self.check_members()

    def member_names(self) -> list[str]:
        if len(set(self.ranks)) == 1:
            return super().member_names()
        return [f"seed_{seed}_rank_{r}" for seed, r in zip(self.seeds, self.ranks, strict=True)]

    def member_losses(self, batch: dict[str, Any]) -> torch.Tensor:
        A, rows = batch["x"], batch["rows"]  # rows: this process's rows of A, hence of U
        return torch.stack([F.mse_loss(U[rows] @ V.T, A, reduction="sum") for U, V in zip(self.U, self.V, strict=True)])

    def lr(self) -> float:
        if self.hparams.lr != "auto":
            return float(self.hparams.lr)
        if self.auto_lr is None:
            A = self.trainer.datamodule.train_x.to(self.device, self.U[0].dtype)
            self.auto_lr = min(auto_lr(U.detach(), V.detach(), A) for U, V in zip(self.U, self.V, strict=True))
        return self.auto_lr

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["auto_lr"] = self.auto_lr  # the step size of the start, whatever auto would give later

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self.auto_lr = checkpoint["auto_lr"]

    def member_results(self) -> list[dict[str, Any]]:
        """Each member's settings and the loss of its final weights (the lab's summed squared error)."""
        final = self.final_losses().tolist()
        return [
            {"seed": seed, "rank": r, "lr": self.lr(), "steps": self.trainer.global_step, "gd_loss": loss}
            for seed, r, loss in zip(self.seeds, self.ranks, final, strict=True)
        ]
