"""The end of a training: each member's final numbers, gathered once, and its row of TensorBoard's HParams tab."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

# Not columns of the HParams tab: what the data determine (sizes, names; linked into the model by the CLI), and
# the members' seeds and ranks, which get columns of their own.
_NOT_SETTINGS = {"n_rows", "n_features", "n_classes", "class_names", "feature_names", "seeds", "rank", "synthetic"}


def flat_metrics(run: dict[str, Any], prefix: str = "final") -> dict[str, float]:
    """The float numbers of a member's results as ``final/...`` tags: ``final/gd_loss``, ``final/val/acc``,
    ``final/val/acc_<class>`` (as the curves are tagged); counts, settings and lists are left out."""
    metrics: dict[str, float] = {}
    for key, value in run.items():
        if key == "acc_per_class" and isinstance(value, dict):
            metrics.update({f"{prefix}/acc_{name}": acc for name, acc in value.items() if acc is not None})
        elif isinstance(value, dict) and key in ("train", "val"):
            metrics.update(flat_metrics(value, f"{prefix}/{key}"))
        elif isinstance(value, float) and key not in ("lr", "lr_setting"):
            metrics[f"{prefix}/{key}"] = value
    return metrics


def settings(trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
    """The model's and the data's settings, as HParams columns (``model/lr``, ``data/preprocessing``, ...)."""
    columns: dict[str, Any] = {"model": type(pl_module).__name__}
    sources = [("model", pl_module.hparams)]
    if trainer.datamodule is not None:
        sources.append(("data", trainer.datamodule.hparams))
    for group, hparams in sources:
        for key, value in hparams.items():
            if key.startswith("_") or key in _NOT_SETTINGS:
                continue
            columns[f"{group}/{key}"] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return columns


class RunSummary(Callback):
    """After training: ``runs``, each member's results (the module's ``member_results()`` merged with those of every
    callback that has a ``member_results()``), and an HParams row per member (its seed and rank, the settings, its
    final metrics). The CLI adds it to every run; results.json is written from ``runs``."""

    def __init__(self) -> None:
        self.runs: list[dict[str, Any]] = []

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.runs = pl_module.member_results()
        for callback in trainer.callbacks:
            if callback is not self and callable(getattr(callback, "member_results", None)):
                for run, more in zip(self.runs, callback.member_results(), strict=True):
                    run.update(more)
        loggers = getattr(pl_module, "member_loggers", None)
        if loggers is None:
            return
        columns = settings(trainer, pl_module)
        for member, run in enumerate(self.runs):
            member_columns = {key: run[key] for key in ("seed", "rank") if key in run} | columns
            loggers.hparams(member, member_columns, flat_metrics(run), trainer.global_step)
