"""The predictions of ``lab2 predict``: one CSV, written once, whole."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from lab2_lightning.errors import LabError
from lab2_lightning.utils.atomic import write_text


class PredictionWriter(BasePredictionWriter):
    """Writes the model's predictions as its ``prediction_table`` lays them out: for the MLP, per input row, its
    line in the input file, the predicted class and each class's probability (``p_<class>``); for a factorisation,
    each filled-in entry's row, column and value. For a model of several seeds, a row per seed, with a ``seed``
    column.

    Args:
        output: the CSV to write (replaced whole; never the input file); default: ``predictions.csv`` in the
            prediction's own run folder, so that no prediction replaces another's.
    """

    def __init__(self, output: str | None = None) -> None:
        super().__init__(write_interval="epoch")
        self.output = Path(output) if output is not None else None
        self.rows = 0

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.output is None:
            self.output = Path(trainer.default_root_dir) / "predictions.csv"
        if self.output.is_dir():
            raise LabError(f"--prediction.output {self.output}: is a folder; name a file")
        inputs = {"the file to classify": trainer.datamodule.source, "the checkpoint": trainer.ckpt_path}
        for what, path in inputs.items():
            if path is not None and os.path.realpath(self.output) == os.path.realpath(path):
                raise LabError(f"--prediction.output {self.output}: is {what}; name another file")

    def write_on_epoch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, predictions: Any, batch_indices: Any
    ) -> None:
        if not trainer.is_global_zero:
            return
        batch = next(iter(trainer.predict_dataloaders))
        header, rows = pl_module.prediction_table(batch, torch.cat(predictions, dim=1).cpu())
        text = io.StringIO()
        out = csv.writer(text, lineterminator="\n")
        out.writerow(header)
        out.writerows(rows)
        write_text(self.output, text.getvalue())
        self.rows = len(rows)
