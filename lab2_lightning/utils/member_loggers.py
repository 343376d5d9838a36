"""Where the scalars and figures of each member (seed) of a batched training go.

A module that trains several members at once (one per seed, or per rank) is still one run for Lightning, with one
logger. TensorBoard compares *runs*, one per folder, so each member gets an event file of its own in a
sub-folder of each TensorBoard logger's directory (``version_N/seed_3``); other loggers get the member's name as a
tag prefix (``seed_3/train/loss``). A training of one member writes into the TensorBoard logger's own folder, and
to other loggers under the plain tag, as any Lightning run does.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import matplotlib.pyplot as plt
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib.figure import Figure
from torch.utils.tensorboard.summary import hparams

from lab2_lightning.utils.event_file import EventFile
from lab2_lightning.utils.png import png


class MemberLoggers:
    """The writers of one training's members; only rank 0 writes. Call :meth:`close` when the training ends.

    Args:
        trainer: the training's Trainer, whose loggers decide where everything goes.
        names: one name per member (``seed_0``, ...), also its sub-folder.
    """

    def __init__(self, trainer: pl.Trainer, names: Sequence[str]) -> None:
        self.names = list(names)
        self.loggers = list(trainer.loggers) if trainer.is_global_zero else []
        self._files: dict[tuple[int, int], EventFile] = {}

    def _file(self, logger_index: int, member: int) -> EventFile:
        """The event file of ``member`` beside the TensorBoard logger ``logger_index``: in the logger's own folder
        for a single member, in a sub-folder per member otherwise (:mod:`~lab2_lightning.utils.event_file` says why
        not a ``SummaryWriter``)."""
        key = (logger_index, member)
        if key not in self._files:
            folder = Path(self.loggers[logger_index].log_dir)
            if len(self.names) > 1:
                folder = folder / self.names[member]
            self._files[key] = EventFile(folder)
        return self._files[key]

    def start(self, step: int) -> None:
        """Open every member's TensorBoard run at ``step``, the first step this training logs: what an earlier,
        stopped training logged from there on is dropped from view (:meth:`EventFile.start`)."""
        for index, logger in enumerate(self.loggers):
            if isinstance(logger, TensorBoardLogger):
                for member in range(len(self.names)):
                    self._file(index, member).start(step)

    def scalars(self, tag: str, steps: Sequence[int], values: torch.Tensor) -> None:
        """Write ``values[t, b]`` as member ``b``'s ``tag`` at ``steps[t]`` (``values``: steps x members, CPU)."""
        if not self.loggers:
            return
        rows = values.tolist()
        for index, logger in enumerate(self.loggers):
            for member, name in enumerate(self.names):
                points = [(step, row[member]) for step, row in zip(steps, rows, strict=True)]
                if isinstance(logger, TensorBoardLogger):
                    events = self._file(index, member)
                    events.scalars(tag, points)
                    events.flush()  # a running TensorBoard shows them now, not when the buffer fills
                else:
                    key = tag if len(self.names) == 1 else f"{name}/{tag}"
                    for step, value in points:
                        logger.log_metrics({key: value}, step=step)

    def figure(self, member: int, tag: str, figure: Figure, step: int) -> None:
        """Add ``figure`` to ``member``'s TensorBoard run(s), then close it."""
        runs = [self._file(i, member) for i, logger in enumerate(self.loggers) if isinstance(logger, TensorBoardLogger)]
        if not runs:
            plt.close(figure)
            return
        image = png(figure)  # drawn once, whatever the number of loggers
        for events in runs:
            events.image(tag, image, step)

    def hparams(self, member: int, params: dict[str, Any], metrics: dict[str, float], step: int) -> None:
        """``member``'s row of TensorBoard's HParams tab: its settings, and its final metrics, written as scalars at
        ``step`` (the tab reads the metrics' values from the run's scalars)."""
        for index, logger in enumerate(self.loggers):
            if isinstance(logger, TensorBoardLogger):
                events = self._file(index, member)
                for tag, value in metrics.items():
                    events.scalars(tag, [(step, value)])
                # The session's summaries only, not the experiment's: TensorBoard takes the first experiment summary it
                # finds as the whole log folder's list of columns, which would hide the other exercise's metrics
                # (and its rows' values); without one, it gathers the columns of every run it sees.
                _, start, end = hparams(params, metrics)
                events.summary(start, step)
                events.summary(end, step)
            else:
                logger.log_hyperparams({"member": self.names[member], **params}, metrics)

    def flush(self) -> None:
        for events in self._files.values():
            events.flush()
        for logger in self.loggers:
            logger.save()

    def close(self) -> None:
        for events in self._files.values():
            events.close()
        self._files.clear()
