"""The data side: reading tables and matrices, synthetic matrices, and the one DataModule of both exercises."""

from lab2_lightning.data.datamodule import IrisDataModule

__all__ = ["IrisDataModule"]
