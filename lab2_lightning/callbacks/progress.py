"""A progress bar over the whole fit in steps, the lab's unit: each step is one full-batch gradient step."""

from __future__ import annotations

import sys
import time
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ProgressBar
from tqdm.auto import tqdm


def fit_steps(trainer: pl.Trainer) -> int | None:
    """The fit's gradient steps: ``max_steps``, or fewer when ``max_epochs`` ends it first; ``None`` when neither
    bounds it (``max_time``). Lightning's ``estimated_stepping_batches`` counts batches, which may hold several
    steps each."""
    per_epoch = trainer.num_training_batches * getattr(trainer.train_dataloader, "steps_per_batch", 1)
    bounds = [trainer.max_steps] if trainer.max_steps >= 0 else []
    if trainer.max_epochs is not None and trainer.max_epochs >= 0 and per_epoch != float("inf"):
        bounds.append(trainer.max_epochs * int(per_epoch))
    return min(bounds) if bounds else None


class StepProgressBar(ProgressBar):
    """One bar for the whole fit, advanced by every batch's steps, showing the metrics logged with ``prog_bar=True``.

    Lightning's default bar starts a new bar every epoch and redraws per batch, which for the lab's tiny steps
    means more time drawing than training. tqdm here redraws at most every ``refresh_seconds``.

    It is the CLI's progress bar, so Lightning adds no bar of its own; turn it off with ``--progress_bar.enabled
    false`` (``--trainer.enable_progress_bar false`` would clash with it).

    Args:
        refresh_seconds: least time between two redraws.
        enabled: draw the bar (false: no bar, e.g. in logs or scripts).
    """

    def __init__(self, refresh_seconds: float = 0.2, enabled: bool = True) -> None:
        super().__init__()
        self.refresh_seconds = refresh_seconds
        self.enabled = enabled
        self._enabled = True  # Lightning's disable() / enable(), e.g. around its tuner; the user's choice stays
        self._bar: tqdm | None = None
        self._postfix_time = 0.0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.enabled and self._enabled and trainer.is_global_zero:
            self._bar = tqdm(
                total=fit_steps(trainer),
                initial=trainer.global_step,
                desc=type(pl_module).__name__,
                unit="step",
                mininterval=self.refresh_seconds,
                dynamic_ncols=True,
                file=sys.stderr,
            )

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: object) -> None:
        if self._bar is not None:
            now = time.monotonic()
            if now - self._postfix_time >= self.refresh_seconds:
                self._postfix_time = now
                self._bar.set_postfix(self._postfix(trainer, pl_module), refresh=False)
            self._bar.update(trainer.global_step - self._bar.n)  # a batch can hold several steps

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
