"""A callback that keeps the per-epoch curve of chosen metrics, for the report's loss-curve figure."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback


class MetricHistory(Callback):
    """Record ``trainer.callback_metrics[key]`` at the end of every training epoch (and validation epoch).

    Values stay tensors on their device until :meth:`as_lists`, so recording costs no device sync per epoch.

    Args:
        keys: metric names to follow, e.g. ``train/loss`` and ``val/loss``.
    """

    def __init__(self, keys: list[str] | None = None) -> None:
        self.keys = keys if keys is not None else ["train/loss", "val/loss"]
        self.values: dict[str, list[torch.Tensor]] = {key: [] for key in self.keys}

    def _record(self, trainer: pl.Trainer, prefix: str) -> None:
        for key in self.keys:
            if key.startswith(prefix) and key in trainer.callback_metrics:
                self.values[key].append(trainer.callback_metrics[key].detach().clone())

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._record(trainer, "train/")

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._record(trainer, "val/")

    def as_lists(self) -> dict[str, list[float]]:
        """The recorded curves as floats, one value per epoch; metrics never seen are left out."""
        return {key: torch.stack(v).cpu().double().tolist() for key, v in self.values.items() if v}
