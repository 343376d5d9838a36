"""Lab 2 (low-rank factorisation by gradient descent; a 4-12-3 MLP on Iris) in PyTorch Lightning."""

from lab2_lightning.datamodule import IrisDataModule
from lab2_lightning.errors import LabError
from lab2_lightning.factorisation import LowRankFactorisation
from lab2_lightning.mlp import LabMLP

__all__ = ["IrisDataModule", "LabError", "LabMLP", "LowRankFactorisation"]
