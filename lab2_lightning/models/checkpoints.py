"""Loading checkpoints safely (``weights_only``) and checking that one fits the model it is meant for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from lab2_lightning.utils.errors import LabError


def load_checkpoint(path: str | Path, mmap: bool = False) -> dict[str, Any]:
    """Load a Lightning checkpoint with ``weights_only=True``: tensors and plain containers, no arbitrary objects.
    ``mmap`` maps the tensors instead of reading them, for a look at the rest (step, settings) of a large one."""
    path = Path(path)
    if not path.is_file():
        raise LabError(f"{path}: no such checkpoint file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as err:  # the unpickler fails on a file that is not a checkpoint in all kinds of ways
        raise LabError(f"{path}: not a readable checkpoint, truncated or corrupt ({type(err).__name__})") from None
    if not isinstance(checkpoint, dict) or not {"state_dict", "hyper_parameters"} <= checkpoint.keys():
        raise LabError(f"{path}: not a checkpoint written by this project's training")
    check_finite(path, checkpoint["state_dict"])
    return checkpoint


def check_finite(path: Path, state_dict: dict[str, Any]) -> None:
    """Refuse weights that are not all finite numbers: resumed, the run would stop with "training diverged" at its
    first step, and validate or predict would report NaN metrics or classes drawn from NaN probabilities."""
    for name, tensor in state_dict.items():
        if not (isinstance(tensor, torch.Tensor) and tensor.is_floating_point()):
            continue
        nan, inf = int(torch.isnan(tensor).sum()), int(torch.isinf(tensor).sum())
        if nan or inf:
            kinds = " and ".join(kind for kind, count in (("NaN", nan), ("inf", inf)) if count)
            raise LabError(
                f"{path}: corrupt checkpoint: {name} holds {kinds} values ({nan + inf} of {tensor.numel()}); the "
                "file is damaged or its run had diverged: use an earlier checkpoint"
            )


def checkpoint_model_name(checkpoint: dict[str, Any]) -> str:
    """The class name of the model a checkpoint holds, as the CLI recorded it."""
    return str(checkpoint["hyper_parameters"].get("_class_path", "another model")).rsplit(".", 1)[-1]


def check_fits(path: str | Path, model: pl.LightningModule) -> None:
    """Refuse, in one line, a checkpoint whose parameters are not this model's (another model, other sizes)."""
    checkpoint = load_checkpoint(path)
    saved, expected = checkpoint["state_dict"], model.state_dict()
    if saved.keys() != expected.keys():
        raise LabError(
            f"{path}: this is a {checkpoint_model_name(checkpoint)} checkpoint; it cannot resume a "
            f"{type(model).__name__}"
        )
    for name, tensor in expected.items():
        if saved[name].shape != tensor.shape:
            raise LabError(
                f"{path}: {name} has shape {tuple(saved[name].shape)} in the checkpoint but "
                f"{tuple(tensor.shape)} in this model (other data or sizes?)"
            )


def adopt_checkpoint_dtype(module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
    """Give ``module`` the floating dtype of the checkpoint's weights before Lightning loads them.

    Lightning restores a checkpoint *before* it applies ``precision`` to the model, so float64 weights would be
    copied into the float32 parameters the module was built with, rounded, and only then widened back: a resumed
    64-bit run would not continue from the exact weights it saved. Call from ``on_load_checkpoint``.
    """
    dtypes = {t.dtype for t in checkpoint["state_dict"].values() if t.is_floating_point()}
    if len(dtypes) == 1:
        module.to(dtypes.pop())
