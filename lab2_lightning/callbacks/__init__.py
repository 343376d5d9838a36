"""Callbacks: the progress bar, the work that needs the data (Exercise 1's yardsticks, figures), the run summary and
what a stopped run kept.

Re-exported here so that configs can name them ``lab2_lightning.callbacks.EckartYoungComparison`` and so on.
"""

from lab2_lightning.callbacks.confusion import ConfusionFigures
from lab2_lightning.callbacks.progress import StepProgressBar
from lab2_lightning.callbacks.stop_note import StopNote
from lab2_lightning.callbacks.summary import RunSummary
from lab2_lightning.callbacks.yardsticks import EckartYoungComparison

__all__ = ["ConfusionFigures", "EckartYoungComparison", "RunSummary", "StepProgressBar", "StopNote"]
