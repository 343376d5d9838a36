"""The two exercises as LightningModules, each holding one copy of the lab's model per seed."""

from lab2_lightning.models.factorisation import LowRankFactorisation
from lab2_lightning.models.mlp import LabMLP

__all__ = ["LabMLP", "LowRankFactorisation"]
