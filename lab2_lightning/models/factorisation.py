"""Exercise 1: ``A ≈ U Vᵀ`` by plain gradient descent on the summed squared error over the observed entries, one
member per seed (and rank)."""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from jsonargparse.typing import PositiveFloat, PositiveInt
from torch import nn
from torchmetrics.regression import MeanSquaredError

from lab2_lightning.errors import LabError
from lab2_lightning.models.linalg import auto_lr
from lab2_lightning.models.seeded import SeededModule
from lab2_lightning.utils.memory import check_fits


def summed_squared_error(U: torch.Tensor, V: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
    """The loss of ``U Vᵀ`` on a batch's observed entries: all of its rows of A (the lab's loss), those a mask
    keeps, or a list of (row, column, value) triples, which costs O(entries x rank), not O(rows x columns)."""
    if "value" in batch:
        return (estimates(U, V, batch) - batch["value"]).square().sum()
    if "observed" in batch:
        return F.mse_loss((U[batch["rows"]] @ V.T)[batch["observed"]], batch["observed_x"], reduction="sum")
    return F.mse_loss(U[batch["rows"]] @ V.T, batch["x"], reduction="sum")


def estimates(U: torch.Tensor, V: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
    """``U Vᵀ`` at the batch's (row, column) pairs."""
    return torch.einsum("ij,ij->i", U[batch["row"]], V[batch["col"]])


class LowRankFactorisation(SeededModule):
    """The lab's ``gd_factorise_ad`` as a LightningModule; each training step is one of the lab's epochs.

    The lab's loop, and where each line went::

        U = torch.rand(m, r); V = torch.rand(n, r)     # __init__, per member, after manual_seed(seed)
        loss = mse_loss(U @ V.T, A, reduction="sum")   # summed_squared_error
        loss.backward(); U -= lr * U.grad; ...         # Lightning, and PlainGradientStep

    With missing entries the loss sums over the observed ones only (the course's ``sgd_factorise_masked``), and
    validation measures the RMSE on the entries the data hid (``data.holdout``) after every Lightning epoch.

    U and V are drawn in float32 and widened to the Trainer's precision (the lab's float64 is ``64-true``).

    Args:
        n_rows: rows of A (linked from the data).
        n_features: columns of A (linked from the data).
        data_rms: the root mean square of A's observed entries (linked from the data), the scale of ``normal``.
        rank: the rank r, or one rank per seed.
        seeds: one member per seed; ``null``: one member, seeded by ``seed_everything``.
        lr: the step size: the lab's 0.01, or ``auto``, stable from the start on any matrix
            (:func:`~lab2_lightning.models.linalg.auto_lr`); 0.01 diverges on most matrices but Iris.
        init: ``uniform``, the lab's ``torch.rand``: every entry in U(0, 1); or ``normal``: centred normal entries
            scaled so that U Vᵀ starts at A's scale. On large matrices at higher rank the lab's all-positive start
            makes the steps tiny and leaves a direction unlearnt; ``normal`` reaches the optimum.
    """

    loss_name = "summed_squared_error"

    def __init__(
        self,
        n_rows: int = 150,
        n_features: int = 4,
        data_rms: float = 1.0,
        rank: PositiveInt | list[PositiveInt] = 2,
        seeds: list[int] | None = None,
        lr: PositiveFloat | Literal["auto"] = 0.01,
        init: Literal["uniform", "normal"] = "uniform",
    ) -> None:
        ranks = [rank] if isinstance(rank, int) else list(rank)
        seeds = list(seeds) if seeds is not None else [torch.initial_seed()]
        if len(ranks) == 1:
            ranks *= len(seeds)
        elif len(seeds) == 1:
            seeds *= len(ranks)
        super().__init__(seeds, n_features)
        self.save_hyperparameters(logger=False)
        if len(ranks) != len(self.seeds) or max(ranks) > min(n_rows, n_features):
            raise LabError(
                f"model.rank {rank}: one rank, or one per seed, each at most min(rows, columns) = "
                f"{min(n_rows, n_features)}"
            )
        self.ranks = ranks
        # U and V in float64 with their gradients, and each member's float32 draws, which are widened.
        check_fits(
            28 * (n_rows + n_features) * sum(ranks),
            f"U and V ({n_rows:,} + {n_features:,} rows, {sum(ranks)} columns over all seeds)",
        )
        self.U, self.V = nn.ParameterList(), nn.ParameterList()
        for seed, r in zip(self.seeds, self.ranks, strict=True):
            draws = torch.Generator().manual_seed(seed)
            if init == "uniform":
                self.U.append(torch.rand(n_rows, r, generator=draws))
                self.V.append(torch.rand(n_features, r, generator=draws))
            else:  # each entry of U Vᵀ, a sum of r products, then has A's mean square
                scale = math.sqrt(data_rms / math.sqrt(r))
                self.U.append(torch.randn(n_rows, r, generator=draws) * scale)
                self.V.append(torch.randn(n_features, r, generator=draws) * scale)
        self.auto_lr: float | None = None
        # The RMSE on the hidden entries, per member; the latest value, and one point per Lightning epoch.
        self.rmse = nn.ModuleList(MeanSquaredError(squared=False) for _ in self.seeds)
        self.hidden_rmse: list[float] | None = None
        self.check_members()

    def member_names(self) -> list[str]:
        if len(set(self.ranks)) == 1:
            return super().member_names()
        return [f"seed_{seed}_rank_{r}" for seed, r in zip(self.seeds, self.ranks, strict=True)]

    def member_losses(self, batch: dict[str, Any]) -> torch.Tensor:
        return torch.stack([summed_squared_error(U, V, batch) for U, V in zip(self.U, self.V, strict=True)])

    def lr(self) -> float:
        """The step size; ``auto`` is measured once on the first process's whole matrix, and every process takes
        it from there."""
        if self.hparams.lr != "auto":
            return float(self.hparams.lr)
        if self.auto_lr is None:
            lr = None
            if self.trainer.is_global_zero:
                A, observed = self.trainer.datamodule.training_matrix()
                lr = min(auto_lr(U, V, A, observed) for U, V in zip(self.U, self.V, strict=True))
            self.auto_lr = self.trainer.strategy.broadcast(lr)
        return self.auto_lr

    def setup(self, stage: str) -> None:
        """Refuse, before the run's first output, what the factorisation cannot take: half precisions (its sums and
        column means lose the digits the results show) and rows held out whole (it learns a row of U for every
        row; it validates on hidden entries instead)."""
        precision, data = str(self.trainer.precision), self.trainer.datamodule
        if precision not in ("32-true", "64-true"):
            raise LabError(f"trainer.precision {precision}: the factorisation runs in 32-true or 64-true")
        if data.dense and len(data.val_x):
            raise LabError(
                f"data.val_size {len(data.val_x)}: the factorisation learns every row, so it holds none out; to "
                "validate it, hide entries with data.holdout"
            )

    def on_validation_start(self) -> None:
        for rmse in self.rmse:
            rmse.set_dtype(self.U[0].dtype)  # torchmetrics keeps float32 states whatever the module's precision

    def validation_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        """The RMSE on the hidden entries (a batch of triples); the rows the datamodule serves otherwise have
        nothing to measure that the training loss does not."""
        if "value" in batch:
            for U, V, rmse in zip(self.U, self.V, self.rmse, strict=True):
                rmse.update(estimates(U, V, batch), batch["value"])

    def on_validation_epoch_end(self) -> None:
        values = self.record_hidden_rmse()
        if values is not None:
            self.show("hidden_rmse", sum(values) / len(values))

    def record_hidden_rmse(self) -> list[float] | None:
        """Each member's RMSE on the hidden entries, as its metric gathered it (over all processes), kept as the
        latest and as a point of the curve; None when there is nothing to keep (no hidden entries, a sanity
        check)."""
        if not self.rmse[0].update_called:
            return None
        values = [rmse.compute().item() for rmse in self.rmse]
        for rmse in self.rmse:
            rmse.reset()
        if self.trainer.sanity_checking:
            return None
        self.check_finite(torch.tensor(values), f"by step {self.trainer.global_step}", "RMSE on the hidden entries")
        self.hidden_rmse = values
        self.val_history.append((self.trainer.global_step, {"rmse/hidden": values}))
        return values

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """Each member's estimates (members x entries) of the entries the training did not see, in the data's own
        units."""
        if not len(batch["row"]):
            raise LabError(f"{batch['source']}: nothing to fill in: the training saw every entry (see data.holdout)")
        shift, scale = self.input_shift[batch["col"]], self.input_scale[batch["col"]]
        return torch.stack([estimates(U, V, batch) * scale + shift for U, V in zip(self.U, self.V, strict=True)])

    def prediction_table(self, batch: dict[str, Any], values: torch.Tensor) -> tuple[list[str], list[list]]:
        """Per seed and filled-in entry: its row and column (from 0) and its estimate."""
        several = len(self.seeds) > 1
        places = list(zip(batch["row"].tolist(), batch["col"].tolist(), strict=True))
        rows = [
            [*([seed] if several else []), row, col, f"{value:.10g}"]
            for seed, member in zip(self.seeds, values, strict=True)
            for (row, col), value in zip(places, member.tolist(), strict=True)
        ]
        return [*(["seed"] if several else []), "row", "column", "value"], rows

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["auto_lr"] = self.auto_lr  # the step size of the start, whatever auto would give later
        checkpoint["hidden_rmse"] = self.hidden_rmse

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self.auto_lr = checkpoint["auto_lr"]
        self.hidden_rmse = checkpoint.get("hidden_rmse")

    def member_results(self) -> list[dict[str, Any]]:
        """Each member's settings and the loss of its final weights (the lab's summed squared error), and its RMSE
        on the hidden entries, if any."""
        final = self.final_losses().tolist()
        rmse = self.hidden_rmse or [None] * len(final)
        return [
            {"seed": seed, "rank": r, "lr": self.lr(), "steps": self.trainer.global_step, "gd_loss": loss}
            | ({"hidden_rmse": error} if error is not None else {})
            for seed, r, loss, error in zip(self.seeds, self.ranks, final, rmse, strict=True)
        ]
