"""Class probabilities to a CSV through the Trainer: ``lab2 predict --ckpt_path CKPT --data.path new.csv``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pandas as pd
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from lab2_lightning.utils.atomic import atomic_write
from lab2_lightning.utils.errors import LabError


class PredictionWriter(BasePredictionWriter):
    """Write what ``predict_step`` returns to one CSV, atomically, when prediction ends (rank 0).

    Columns: ``line`` (the row's line number in the input file), ``seed`` (only when the model holds several
    members, one row per member and input row), ``predicted`` (the most probable class) and ``p_<class>`` for each
    class, in the model's class order.

    What the model provides: ``predict_step`` returns probabilities of shape (members, rows, classes) (or (rows,
    classes) for one member) for a batch whose ``line`` holds the rows' line numbers; ``class_names`` names the
    classes, and ``hparams.seeds``, when there, the members' seeds (else they are numbered 0, 1, ...).

    Args:
        output: the CSV file to write.
    """

    def __init__(self, output: str = "predictions.csv") -> None:
        super().__init__(write_interval="batch")
        self.output = Path(output)
        self.rows = 0
        self._batches: list[tuple[torch.Tensor, torch.Tensor]] = []

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._batches = []

    def write_on_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        prediction: Any,
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        probabilities = prediction.detach().to("cpu", torch.float64)
        self._batches.append((batch["line"].cpu(), probabilities if probabilities.ndim == 3 else probabilities[None]))

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not (trainer.is_global_zero and self._batches):
            return
        lines = torch.cat([line for line, _ in self._batches])
        probabilities = torch.cat([p for _, p in self._batches], dim=1)
        seeds = pl_module.hparams.get("seeds") or list(range(probabilities.shape[0]))
        frame = prediction_table(lines, probabilities, list(pl_module.class_names), list(seeds))
        atomic_write(self.output, lambda tmp: frame.to_csv(tmp, index=False, float_format="%.6f"))
        self.rows = len(frame)
        self._batches = []


def prediction_table(
    lines: torch.Tensor, probabilities: torch.Tensor, class_names: list[str], seeds: list[int]
) -> pd.DataFrame:
    """The CSV's rows: one per input row, or per member and input row (long format, with ``seed``)."""
    members, rows, classes = probabilities.shape
    if classes != len(class_names) or len(lines) != rows or len(seeds) != members:
        raise LabError(
            f"the model's predictions have shape {tuple(probabilities.shape)} for {len(lines)} rows, "
            f"{len(class_names)} classes and {len(seeds)} seeds"
        )
    frames = []
    for seed, p in zip(seeds, probabilities, strict=True):
        frame = pd.DataFrame({"line": lines.tolist()})
        if members > 1:
            frame["seed"] = seed
        frame["predicted"] = [class_names[k] for k in p.argmax(dim=1).tolist()]
        for k, name in enumerate(class_names):
            frame[f"p_{name}"] = p[:, k].numpy()
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
