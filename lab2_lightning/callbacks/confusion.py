"""Exercise 2's confusion matrices as TensorBoard figures, drawn once after training."""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

from lab2_lightning.callbacks.figures import confusion_figure
from lab2_lightning.models.mlp import LabMLP


class ConfusionFigures(Callback):
    """Log the final confusion matrix of each split (the first member's: one figure per split, not per seed)."""

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not (isinstance(pl_module, LabMLP) and trainer.is_global_zero and pl_module.member_loggers is not None):
            return
        for split, final in pl_module.final.items():
            title = (
                f"{'Training' if split == 'train' else 'Validation'} confusion matrix ({pl_module.member_names()[0]})"
            )
            figure = confusion_figure(final["confusion"][0].numpy(), pl_module.class_names, title)
            pl_module.member_loggers.figure(0, f"{split}/confusion_matrix", figure, trainer.global_step)
