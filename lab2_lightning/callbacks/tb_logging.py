"""Logging what ``self.log`` cannot: figures, and scalars from hooks that run after the training loop."""

from __future__ import annotations

import lightning.pytorch as pl
import matplotlib.pyplot as plt
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib.figure import Figure


def log_figure(trainer: pl.Trainer, tag: str, figure: Figure) -> None:
    """Add ``figure`` to every TensorBoard logger of ``trainer`` (rank 0 only), then close it."""
    if trainer.is_global_zero:
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_figure(tag, figure, global_step=trainer.global_step, close=False)
    plt.close(figure)


def log_scalars(trainer: pl.Trainer, metrics: dict[str, float]) -> None:
    """Log numbers to every logger at the current step (rank 0), then flush them to disk."""
    if trainer.is_global_zero:
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
            logger.save()
