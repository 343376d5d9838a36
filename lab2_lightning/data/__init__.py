"""The data of both exercises, served as full batches: a table or matrix file (Iris by default), a file of a
matrix's observed entries, or a synthetic matrix."""

from lab2_lightning.data.datamodule import FullBatchDataModule, TableDataModule
from lab2_lightning.data.entries import EntriesDataModule
from lab2_lightning.data.synthetic import SyntheticDataModule

__all__ = ["EntriesDataModule", "FullBatchDataModule", "SyntheticDataModule", "TableDataModule"]
