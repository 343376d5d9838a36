"""TensorBoard for runs of several seeds: a TensorBoard run per member, so each seed has its curves and its row in
the HParams table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from lab2_lightning.callbacks.results import run_results

# HParams columns, in this order: what tells runs apart first.
HPARAMS = ("seed", "rank", "lr", "hidden", "bias", "reduction")


class MemberBoard(Callback):
    """Writes each member's curves: the training loss every ``trainer.log_every_n_steps`` steps (and at the last),
    the MLP's validation numbers after each epoch; at the end, the run's settings and final numbers for the HParams
    table. With one member the run's own folder is its TensorBoard run; with several, ``seed_S`` folders in it.

    A resumed run writes from the step after its checkpoint and tells TensorBoard (``purge_step``) to drop what the
    stopped run had written from there: every step is shown once. With another logger than TensorBoard, the same
    points go to it, named ``<member>/<tag>``; without a logger, nowhere.
    """

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.writers: list[SummaryWriter] = []
        self.names = pl_module.member_names()
        self.curve_done = self.val_done = 0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.curve_done = self.val_done = trainer.global_step  # a resumed run: what its checkpoint holds is written
        if trainer.is_global_zero and isinstance(trainer.logger, TensorBoardLogger):
            root = Path(trainer.logger.log_dir)
            purge = {"purge_step": trainer.global_step + 1} if trainer.global_step else {}
            self.writers = [SummaryWriter(root / name if len(self.names) > 1 else root, **purge) for name in self.names]

    def _write(self, trainer: pl.Trainer, step: int, tag: str, values: list[float]) -> None:
        if self.writers:
            for writer, value in zip(self.writers, values, strict=True):
                writer.add_scalar(tag, value, step)
        elif trainer.logger is not None and trainer.is_global_zero:
            trainer.logger.log_metrics({f"{name}/{tag}": v for name, v in zip(self.names, values, strict=True)}, step)

    def _write_curves(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        history, every = pl_module.history, trainer.log_every_n_steps
        for step in range(self.curve_done + 1, len(history) + 1):
            if step % every == 0 or step == trainer.max_steps:
                self._write(trainer, step, f"{pl_module.loss_name}/train", history[step - 1].tolist())
        self.curve_done = len(history)
        for step, points in getattr(pl_module, "val_history", []):
            if step > self.val_done:
                for tag, values in points.items():
                    self._write(trainer, step, tag, values)
                self.val_done = step

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write_curves(trainer, pl_module)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._write_curves(trainer, pl_module)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if pl_module.final_loss is None:  # nothing trained (the fit skipped its loop)
            return
        self._write_curves(trainer, pl_module)
        runs = run_results(trainer, pl_module)
        for writer, run in zip(self.writers, runs, strict=False):
            metrics = final_metrics(pl_module.loss_name, run)
            for tag, value in metrics.items():
                if tag.startswith("yardsticks/"):  # the others are the last points of curves already written
                    writer.add_scalar(tag, value, trainer.global_step)
            # The HParams table: a row per member, its settings and the last values of these tags.
            settings = {key: run[key] for key in HPARAMS if key in run}
            for summary in hparams(settings, metrics):
                writer.file_writer.add_summary(summary)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        for writer in self.writers:
            writer.close()
        self.writers = []


def final_metrics(loss_name: str, run: dict[str, Any]) -> dict[str, float]:
    """The few final numbers of the HParams table. The MLP's are the last points of its curves; the
    factorisation's loss of its final weights and its yardsticks come after its curve."""
    if "gd_loss" in run:
        metrics = {"yardsticks/gd_loss": run["gd_loss"]}  # of the final weights, after the curve's last step
        if "svd_loss" in run:
            metrics["yardsticks/svd_optimum"] = run["svd_loss"]
            if run["relative_gap"] is not None:
                metrics["yardsticks/relative_gap"] = run["relative_gap"]
        return metrics
    return {f"accuracy/{split}": run[split]["acc"] for split in ("train", "val") if split in run} | (
        {f"{loss_name}/val": run["val"]["loss"]} if "val" in run else {}
    )
