"""``last.ckpt``: what ``--ckpt_path last`` continues, written at the end of every Lightning epoch."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback


class LastCheckpoint(Callback):
    """Writes the run's ``last.ckpt`` at the end of every Lightning epoch, so that it holds the final weights
    whatever ``--checkpoint`` says: Lightning's ``ModelCheckpoint(save_last=True)`` writes it only at a step where it
    writes a checkpoint of its own, which with a ``monitor`` is only when the monitored value improves.

    A plain callback, not a ``Checkpoint``: Lightning calls it before the callbacks that watch a value (early
    stopping, a ``ModelCheckpoint`` with a ``monitor``) end the epoch. A run resumed from it ends that epoch again,
    so they act on it once, as in a run never stopped.
    """

    def __init__(self) -> None:
        self.path: Path | None = None  # set with the run's folder

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.path is not None:
            trainer.save_checkpoint(self.path)  # every process calls it; the first writes
