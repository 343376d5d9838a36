"""Lab 2 (low-rank factorisation by gradient descent; a 4-12-3 MLP on Iris) in PyTorch Lightning.

``lab2_lightning.LabMLP``, ``lab2_lightning.LowRankFactorisation`` and ``lab2_lightning.IrisDataModule`` keep
the short ``class_path`` of configs working. They are imported on first use, so that importing the package loads
neither torch nor Lightning and changes no global state: the entry points (:mod:`lab2_lightning.cli`) set what must
be set before torch loads, once.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "IrisDataModule": "lab2_lightning.data.datamodule",
    "LabMLP": "lab2_lightning.models.mlp",
    "LowRankFactorisation": "lab2_lightning.models.factorisation",
    "LabError": "lab2_lightning.utils.errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'lab2_lightning' has no attribute {name!r}")
