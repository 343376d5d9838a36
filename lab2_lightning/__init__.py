"""Lab 2 (low-rank factorisation by gradient descent; a 4-12-3 MLP on Iris) in PyTorch Lightning."""

import os

# MKL, PyTorch's BLAS/LAPACK on x86 CPUs, picks code paths by the memory alignment of its inputs, so the last bits
# of a result can change from one process to the next. Conditional numerical reproducibility pins the path (at a
# few percent of speed), which makes CPU runs bitwise repeatable. It must be set before torch first calls MKL.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

from lab2_lightning.datamodule import IrisDataModule
from lab2_lightning.errors import LabError
from lab2_lightning.factorisation import LowRankFactorisation
from lab2_lightning.mlp import LabMLP

__all__ = ["IrisDataModule", "LabError", "LabMLP", "LowRankFactorisation"]
