"""A run's final numbers, member by member: the module's own, and what callbacks measured beside it."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl


def run_results(trainer: pl.Trainer, pl_module: pl.LightningModule) -> list[dict[str, Any]]:
    """``pl_module.member_results()``, completed by every callback that has a ``member_results(runs)`` method (the
    yardsticks)."""
    runs = pl_module.member_results()
    for callback in trainer.callbacks:
        if hasattr(callback, "member_results"):
            callback.member_results(runs)
    return runs
