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
    """Writes, per input row: its line in the input file, the predicted class and each class's probability
    (``p_<class>``); for a model of several seeds, a row per seed and input row, with a ``seed`` column.

    Args:
        output: the CSV to write (replaced whole; never the input file).
    """

    def __init__(self, output: str = "predictions.csv") -> None:
        super().__init__(write_interval="epoch")
        self.output = Path(output)
        self.rows = 0

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
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
        probabilities = torch.cat(predictions, dim=1).cpu()  # members x rows x classes
        names, seeds = pl_module.class_names, pl_module.seeds
        text = io.StringIO()
        out = csv.writer(text, lineterminator="\n")
        out.writerow([*(["seed"] if len(seeds) > 1 else []), "line", "predicted", *(f"p_{n}" for n in names)])
        for seed, member in zip(seeds, probabilities, strict=True):
            for line, p in zip(batch["line"], member.tolist(), strict=True):
                out.writerow(
                    [
                        *([seed] if len(seeds) > 1 else []),
                        line,
                        names[max(range(len(p)), key=p.__getitem__)],
                        *(f"{v:.6f}" for v in p),
                    ]
                )
        write_text(self.output, text.getvalue())
        self.rows = len(batch["line"]) * len(seeds)
