"""A progress bar over epochs, the natural unit when every epoch is a single full-batch step."""

from __future__ import annotations

import sys
import time
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ProgressBar
from tqdm.auto import tqdm


class EpochProgressBar(ProgressBar):
    """One bar for the whole fit, advanced once per epoch, showing the metrics logged with ``prog_bar=True``.

    Lightning's default bar starts a new bar every epoch, which for the lab's 1000 one-batch epochs means 1000
    bars and, on a terminal, more time drawing than training. tqdm redraws at most every ``refresh_seconds``.

    Args:
        refresh_seconds: least time between two redraws.
    """

    def __init__(self, refresh_seconds: float = 0.2) -> None:
        super().__init__()
        self.refresh_seconds = refresh_seconds
        self._enabled = True
        self._bar: tqdm | None = None
        self._postfix_time = 0.0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._enabled and trainer.is_global_zero:
            self._bar = tqdm(
                total=trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None,
                initial=trainer.current_epoch,
                desc=type(pl_module).__name__,
                unit="epoch",
                mininterval=self.refresh_seconds,
                dynamic_ncols=True,
                file=sys.stderr,
            )

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._bar is not None:
            now = time.monotonic()
            if now - self._postfix_time >= self.refresh_seconds:
                self._postfix_time = now
                self._bar.set_postfix(self._postfix(trainer, pl_module), refresh=False)
            self._bar.update(1)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._bar is not None:
            self._bar.set_postfix(self._postfix(trainer, pl_module))
            self._bar.close()
            self._bar = None

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _postfix(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        metrics = self.get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return {k: f"{v:.4g}" if isinstance(v, float) else v for k, v in metrics.items()}
