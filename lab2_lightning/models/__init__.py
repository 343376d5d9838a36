"""The two LightningModules, the plain gradient step they share, the low-rank loss and the lab's own loops."""

from lab2_lightning.models.factorisation import LowRankFactorisation
from lab2_lightning.models.mlp import LabMLP

__all__ = ["LabMLP", "LowRankFactorisation"]
