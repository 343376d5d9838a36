"""Classify new measurements with a trained MLP checkpoint: ``python scripts/predict.py CKPT IN.csv -o OUT.csv``."""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path

import pandas as pd
import torch

from lab2_lightning.data.table import read_table
from lab2_lightning.models.checkpoints import checkpoint_model_name, load_checkpoint
from lab2_lightning.models.mlp import LabMLP
from lab2_lightning.utils.atomic import atomic_write
from lab2_lightning.utils.errors import LabError, exit_on_user_error


def load_mlp(path: str | Path) -> LabMLP:
    """Rebuild the MLP of a checkpoint, with the training data's preprocessing statistics."""
    checkpoint = load_checkpoint(path)
    hparams = checkpoint["hyper_parameters"]
    if "W1" not in checkpoint["state_dict"]:
        raise LabError(f"{path}: this is a {checkpoint_model_name(checkpoint)} checkpoint, not an MLP's (LabMLP)")
    accepted = inspect.signature(LabMLP.__init__).parameters
    model = LabMLP(**{k: v for k, v in hparams.items() if k in accepted})
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


@torch.no_grad()
def predict_csv(model: LabMLP, path: str | Path) -> pd.DataFrame:
    """Class probabilities for each row of a CSV of raw measurements (a label column, if any, is ignored)."""
    table = read_table(path, label_column="auto")
    expected = model.hparams.n_features
    if table.features.shape[1] != expected:
        raise LabError(f"{path}: {table.features.shape[1]} feature columns, but the model was trained on {expected}")
    x = torch.from_numpy(table.features).to(model.W1.dtype)
    x = (x - model.input_shift) / model.input_scale
    probabilities = torch.softmax(model(x), dim=1)
    frame = pd.DataFrame({"line": table.lines})
    frame["predicted"] = [model.class_names[k] for k in probabilities.argmax(dim=1).tolist()]
    for k, name in enumerate(model.class_names):
        frame[f"p_{name}"] = probabilities[:, k].numpy()
    return frame


def main(args: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        description="Classify the rows of a CSV of measurements with a trained MLP checkpoint. "
        "The checkpoint's own preprocessing statistics (from its training data) are applied."
    )
    parser.add_argument("checkpoint", help="a LabMLP checkpoint, e.g. lightning_logs/version_0/checkpoints/last.ckpt")
    parser.add_argument("input", help="CSV with the same feature columns as the training data; labels optional")
    parser.add_argument("-o", "--output", default="predictions.csv", help="CSV to write (default: %(default)s)")
    options = parser.parse_args(args)
    with exit_on_user_error():
        frame = predict_csv(load_mlp(options.checkpoint), options.input)
    output = atomic_write(options.output, lambda tmp: frame.to_csv(tmp, index=False, float_format="%.6f"))
    print(f"{len(frame)} predictions: {output}")
    return output
