"""Exercise 1's yardsticks, what a factorisation by gradient descent is measured against: for a complete matrix the
Eckart–Young optimum and PCA; for one with hidden entries, two other ways of filling them in.

They need the whole data matrix, which the callback reads from ``trainer.datamodule``, as Lightning's autoencoder
example's ``ImageSampler`` reads its images. They are computed once, by the first process.
"""

from __future__ import annotations

from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

from lab2_lightning.data.datamodule import column_means
from lab2_lightning.errors import LabError
from lab2_lightning.models.factorisation import estimates
from lab2_lightning.models.linalg import hard_impute, linear_map_residual, pca_scores, principal_angles, svd_optimum

# A relative gap is meaningless where the optimum is zero to rounding (the rank reaches the data's own): below this
# fraction of ||A||².
EXACT = 1e-12


def rmse(estimates: torch.Tensor, values: torch.Tensor) -> float:
    return float((estimates - values).square().mean().sqrt())


class Yardsticks(Callback):
    """After training, per member.

    A complete matrix: ``svd_loss`` (the least loss of any rank-r approximation), ``relative_gap`` (GD's loss above
    it; null where the optimum is zero to rounding), the principal angles between span(U) and the first r principal
    axes, and ``map_residual``, the relative residual of the best linear map from U to the PCA scores. The first
    member's U and PCA scores are kept for Figure 1.

    A matrix with hidden entries (``data.holdout``), where no optimum exists: the RMSE on the same hidden entries
    of ``column_mean`` (each column's observed mean) and of ``hard_impute`` (iterative SVD imputation at the
    member's rank, :func:`~lab2_lightning.models.linalg.hard_impute`), beside GD's ``hidden_rmse``.

    Args:
        svd: ``exact``, ``randomized`` (``torch.svd_lowrank``) or ``auto`` (randomized above 1000 rows and columns).
    """

    def __init__(self, svd: Literal["auto", "exact", "randomized"] = "auto") -> None:
        self.svd = svd
        self.results: list[dict[str, Any]] = []
        self.figure: dict[str, Any] | None = None

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not hasattr(pl_module, "U"):
            raise LabError(f"Yardsticks measure factorisations, not a {type(pl_module).__name__}")
        if not trainer.is_global_zero:
            return
        data = trainer.datamodule
        if len(data.hidden):
            self.results = self.completion(data, pl_module)
        elif not data.missing:
            self.results = self.eckart_young(data.train_x.to(pl_module.device), pl_module)

    def completion(self, data: pl.LightningDataModule, pl_module: pl.LightningModule) -> list[dict[str, Any]]:
        seen, hidden = data.training_entries(), data.hidden
        seen, hidden = (e.to(pl_module.device, torch.float64) for e in (seen, hidden))
        imputed = {}
        for rank in set(pl_module.ranks):
            P, Q, rounds = hard_impute(seen.row, seen.col, seen.value, (data.n_rows, data.n_features), rank)
            estimate = estimates(P, Q, hidden.batch())
            imputed[rank] = {"hard_impute_rmse": rmse(estimate, hidden.value), "hard_impute_rounds": rounds}
        column_mean = rmse(column_means(seen, data.n_features)[hidden.col], hidden.value)
        return [{"column_mean_rmse": column_mean, **imputed[rank]} for rank in pl_module.ranks]

    def eckart_young(self, A: torch.Tensor, pl_module: pl.LightningModule) -> list[dict[str, Any]]:
        optimum = {rank: svd_optimum(A, rank, self.svd) for rank in set(pl_module.ranks)}
        scores = {rank: pca_scores(A, rank, optimum[rank][1]).double() for rank in optimum}
        squared_norm = float(torch.linalg.vector_norm(A, dtype=torch.float64)) ** 2
        results = []
        for U, rank in zip(pl_module.U, pl_module.ranks, strict=True):
            U = U.detach().double()
            svd_loss, method = optimum[rank]
            results.append(
                {
                    "svd_loss": svd_loss,
                    "svd_method": method,
                    "svd_exact": svd_loss <= EXACT * squared_norm,  # zero to rounding, on the data's own scale
                    "principal_angles_deg": torch.rad2deg(principal_angles(U, scores[rank])).tolist(),
                    "map_residual": linear_map_residual(U, scores[rank]),
                }
            )
        first = pl_module.U[0].detach().double()
        self.figure = {"U": first[:, :2].tolist(), "pca": scores[pl_module.ranks[0]][:, :2].tolist()}
        return results

    def member_results(self, runs: list[dict[str, Any]]) -> None:
        """Add the yardsticks to the module's results, member by member (on the first process)."""
        for run, extra in zip(runs, self.results, strict=False):
            run.update(extra)
            if "svd_loss" in extra:
                exact = run.pop("svd_exact")
                run["relative_gap"] = None if exact else (run["gd_loss"] - extra["svd_loss"]) / extra["svd_loss"]
