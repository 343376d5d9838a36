"""``last.ckpt`` holds the final state of every fit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback, ModelCheckpoint


class FinalCheckpoint(Callback):
    """Writes ``last.ckpt`` at the end of training when the checkpoint schedule did not.

    Lightning 2.6 writes ``last.ckpt`` with each scheduled checkpoint (every ``checkpoint.every_n_epochs`` epochs),
    and at the end only if none was written: a run whose last step is off that schedule (``trainer.max_steps`` 60 with
    checkpoints every 50 steps) left a ``last.ckpt`` behind its final state, and resuming it trained the end again.
    """

    def __init__(self) -> None:
        self.saved_step: int | None = None

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self.saved_step = checkpoint["global_step"]

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        checkpoints = trainer.checkpoint_callback
        if not isinstance(checkpoints, ModelCheckpoint) or not checkpoints.save_last or checkpoints.dirpath is None:
            return
        # No checkpoint yet: Lightning's own end-of-training save writes this one.
        if self.saved_step is not None and self.saved_step != trainer.global_step:
            last = f"{ModelCheckpoint.CHECKPOINT_NAME_LAST}{ModelCheckpoint.FILE_EXTENSION}"
            trainer.save_checkpoint(Path(checkpoints.dirpath) / last, weights_only=checkpoints.save_weights_only)
