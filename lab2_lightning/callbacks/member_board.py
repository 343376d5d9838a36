"""TensorBoard, a run per member: each seed has its curves and its row in the HParams table."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from lab2_lightning.callbacks.results import run_results

# The HParams table's columns, the settings that tell the lab's runs apart (TensorBoard shows the first few,
# alphabetically), with a value of each one's type; and its few final metrics. Every run declares all of them, so
# one table holds both exercises' runs.
COLUMNS = {"hidden": 0, "lr": 0.0, "rank": 0, "seed": 0}
METRICS = (
    "yardsticks/gd_loss",
    "yardsticks/relative_gap",
    "yardsticks/svd_optimum",
    "rmse/hidden",
    "yardsticks/column_mean_rmse",
    "yardsticks/hard_impute_rmse",
    "accuracy/train",
    "accuracy/val",
    "cross_entropy/val",
)


class MemberBoard(Callback):
    """Writes each member's curves: the training loss every ``trainer.log_every_n_steps`` steps (and at the last),
    the MLP's validation numbers after each epoch; at the end, the run's settings and final numbers for the HParams
    table. With one member the run's own folder is its TensorBoard run; with several, ``seed_S`` folders in it.

    A resumed run writes from the step after its checkpoint and tells TensorBoard (``purge_step``) to drop what the
    stopped run had written from there: every step is shown once. The event files go into the run's folder
    (``trainer.log_dir``); the same points also go to Lightning's logger (CSVLogger's metrics.csv by default), named
    ``<member>/<tag>``. Without a logger, nowhere.
    """

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.writers: list[SummaryWriter] | None = None  # opened when training starts
        self.names = pl_module.member_names()
        self.curve_done = self.val_done = self.resumed_at = 0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._open(trainer)

    def _open(self, trainer: pl.Trainer) -> None:
        # A resumed run: TensorBoard keeps what the stopped run wrote up to its checkpoint; Lightning's logger starts
        # its files afresh (CSVLogger's metrics.csv), so it gets every point again.
        self.resumed_at, self.writers = trainer.global_step, []
        log_dir = trainer.log_dir  # every DDP process asks: Lightning broadcasts rank 0's answer
        if trainer.is_global_zero and trainer.logger is not None and log_dir is not None:  # fast_dev_run: none
            root = Path(log_dir)
            purge = {"purge_step": trainer.global_step + 1} if trainer.global_step else {}
            self.writers = [SummaryWriter(root / name if len(self.names) > 1 else root, **purge) for name in self.names]

    def _write(self, trainer: pl.Trainer, step: int, points: dict[str, list[float]]) -> None:
        """A step's points, each a value per member: to TensorBoard, and as one row to Lightning's own logger
        (metrics.csv for the default CSVLogger)."""
        if not self.writers:  # not training, not the first DDP process, or no logger
            return
        for tag, values in points.items():
            for writer, value in zip(self.writers, values, strict=True):
                if step > self.resumed_at:
                    writer.add_scalar(tag, value, step)
        row = {f"{name}/{tag}": v for tag, values in points.items() for name, v in zip(self.names, values, strict=True)}
        trainer.logger.log_metrics(row, step)

    def _write_curves(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The points not written yet: the training loss every ``log_every_n_steps`` (and at the last step), and
        the validation numbers."""
        points: dict[int, dict[str, list[float]]] = defaultdict(dict)
        history, every = pl_module.history, trainer.log_every_n_steps
        for step in range(self.curve_done + 1, len(history) + 1):
            if step % every == 0 or step == trainer.max_steps:
                points[step][f"{pl_module.loss_name}/train"] = history[step - 1].tolist()
        self.curve_done = len(history)
        for step, values in pl_module.val_history:
            if step > self.val_done:
                points[step] |= values
                self.val_done = step
        for step in sorted(points):
            self._write(trainer, step, points[step])

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write_curves(trainer, pl_module)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._write_curves(trainer, pl_module)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step == 0:  # nothing trained
            return
        if self.writers is None:  # a resume with no step left to take: Lightning skipped the training loop
            self._open(trainer)
        self._write_curves(trainer, pl_module)
        runs = run_results(trainer, pl_module)
        for writer, run in zip(self.writers, runs, strict=False):  # none on the other DDP processes
            metrics = final_metrics(pl_module.loss_name, run)
            for tag, value in metrics.items():
                if tag.startswith("yardsticks/"):  # the others are the last points of curves already written
                    writer.add_scalar(tag, value, trainer.global_step)
            # The HParams table: its columns, then this member's row (its settings; its metrics are the tags' last
            # values).
            columns, _, _ = hparams(COLUMNS, dict.fromkeys(METRICS, 0.0))
            _, row_start, row_end = hparams({key: run[key] for key in COLUMNS if key in run}, metrics)
            for summary in (columns, row_start, row_end):
                writer.file_writer.add_summary(summary)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        for writer in self.writers or []:
            writer.close()
        self.writers = None


def final_metrics(loss_name: str, run: dict[str, Any]) -> dict[str, float]:
    """The few final numbers of the HParams table. The MLP's are the last points of its curves; the
    factorisation's loss of its final weights and its yardsticks come after its curve."""
    if "gd_loss" in run:
        metrics = {"yardsticks/gd_loss": run["gd_loss"]}  # of the final weights, after the curve's last step
        if "svd_loss" in run:
            metrics["yardsticks/svd_optimum"] = run["svd_loss"]
            if run["relative_gap"] is not None:
                metrics["yardsticks/relative_gap"] = run["relative_gap"]
        if "hidden_rmse" in run:  # the last point of its curve
            metrics["rmse/hidden"] = run["hidden_rmse"]
        for name in ("column_mean_rmse", "hard_impute_rmse"):
            if name in run:
                metrics[f"yardsticks/{name}"] = run[name]
        return metrics
    return {f"accuracy/{split}": run[split]["acc"] for split in ("train", "val") if split in run} | (
        {f"{loss_name}/val": run["val"]["loss"]} if "val" in run else {}
    )
