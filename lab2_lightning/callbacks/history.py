"""A callback that keeps the curves of chosen metrics, for the report's loss-curve figure."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

from lab2_lightning.models.steps import logging_step


class MetricHistory(Callback):
    """Record ``trainer.callback_metrics[key]`` with its step whenever it is logged.

    Training metrics are taken on the logging steps (``trainer.log_every_n_steps``), validation metrics after
    every validation run. Values stay tensors until :meth:`as_dict`, so recording costs no device sync.

    Args:
        keys: metric names to follow, e.g. ``train/loss`` and ``val/loss``.
    """

    def __init__(self, keys: list[str] | None = None) -> None:
        self.keys = keys if keys is not None else ["train/loss", "val/loss"]
        self.steps: dict[str, list[int]] = {key: [] for key in self.keys}
        self.values: dict[str, list[torch.Tensor]] = {key: [] for key in self.keys}

    def _record(self, trainer: pl.Trainer, prefix: str) -> None:
        for key in self.keys:
            if key.startswith(prefix) and key in trainer.callback_metrics:
                self.steps[key].append(trainer.global_step)
                self.values[key].append(trainer.callback_metrics[key].detach().clone())

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: object) -> None:
        if logging_step(pl_module):
            self._record(trainer, "train/")

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._record(trainer, "val/")

    def as_dict(self) -> dict[str, dict[str, list[float]]]:
        """``{key: {"step": [...], "value": [...]}}`` for every metric seen."""
        return {
            key: {"step": self.steps[key], "value": torch.stack(values).cpu().double().tolist()}
            for key, values in self.values.items()
            if values
        }
