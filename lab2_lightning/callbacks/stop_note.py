"""What a fit stopped by SIGINT or SIGTERM leaves behind, for the one line the entry point prints."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

from lab2_lightning.models.checkpoints import load_checkpoint
from lab2_lightning.utils.signals import Stopped


class StopNote(Callback):
    """When a fit is stopped, name its last checkpoint and the exact ``--ckpt_path`` that continues it, or say that
    it stopped before its first checkpoint, where recommending a resume would only lead to another error."""

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, Stopped):
            return
        checkpoints = trainer.checkpoint_callback
        last = Path(checkpoints.dirpath) / "last.ckpt" if checkpoints is not None and checkpoints.dirpath else None
        if last is None or not last.is_file():
            exception.kept = "no checkpoint was written yet, so there is nothing to resume; run the same command again"
            return
        step = load_checkpoint(last)["global_step"]
        exception.kept = f"kept {last} (step {step}); continue with the same command and --ckpt_path {last}"
