"""Work beside training: what needs the data (the yardsticks), TensorBoard, and files written from a run (the
resume checkpoint, predictions)."""

from lab2_lightning.callbacks.last_checkpoint import LastCheckpoint
from lab2_lightning.callbacks.member_board import MemberBoard
from lab2_lightning.callbacks.prediction_writer import PredictionWriter
from lab2_lightning.callbacks.yardsticks import Yardsticks

__all__ = ["LastCheckpoint", "MemberBoard", "PredictionWriter", "Yardsticks"]
