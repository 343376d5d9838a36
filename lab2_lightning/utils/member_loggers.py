"""Where the scalars and figures of each member (seed) of a batched training go.

A module that trains several members at once (one per seed, or per rank) is still one run for Lightning, with one
logger. TensorBoard compares *runs*, one per folder, so each member gets a TensorBoard writer of its own in a
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
from tensorboard.compat.proto.summary_pb2 import Summary
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

QUEUE_EVENTS = 100_000  # events a writer holds before the training must wait for its thread


class MemberLoggers:
    """The writers of one training's members; only rank 0 writes. Call :meth:`close` when the training ends.

    Args:
        trainer: the training's Trainer, whose loggers decide where everything goes.
        names: one name per member (``seed_0``, ...), also its sub-folder.
    """

    def __init__(self, trainer: pl.Trainer, names: Sequence[str]) -> None:
        self.names = list(names)
        self.loggers = list(trainer.loggers) if trainer.is_global_zero else []
        self._writers: dict[tuple[int, int], SummaryWriter] = {}

    def _writer(self, logger_index: int, member: int) -> SummaryWriter:
        """The TensorBoard writer of ``member`` beside the TensorBoard logger ``logger_index``: in the logger's own
        folder for a single member, in a sub-folder per member otherwise.

        Our own writer, not the logger's, for its queue: a TensorBoard writer hands each event to a thread that
        checksums it in Python, and with the default queue of 10 events the training waits on that thread at
        every point (measured: 110 µs per point, against 25 µs with a queue that holds an epoch's points).
        """
        key = (logger_index, member)
        if key not in self._writers:
            folder = Path(self.loggers[logger_index].log_dir)
            if len(self.names) > 1:
                folder = folder / self.names[member]
            self._writers[key] = SummaryWriter(str(folder), max_queue=QUEUE_EVENTS, flush_secs=30)
        return self._writers[key]

    def scalars(self, tag: str, steps: Sequence[int], values: torch.Tensor) -> None:
        """Write ``values[t, b]`` as member ``b``'s ``tag`` at ``steps[t]`` (``values``: steps x members, CPU)."""
        if not self.loggers:
            return
        rows = values.tolist()
        for index, logger in enumerate(self.loggers):
            for member, name in enumerate(self.names):
                if isinstance(logger, TensorBoardLogger):
                    # The summary protocol buffer itself: SummaryWriter.add_scalar costs several times more per
                    # point (type checks, NumPy conversion), and the lab writes ~15,000 points.
                    file_writer = self._writer(index, member).file_writer
                    for step, row in zip(steps, rows, strict=True):
                        value = Summary.Value(tag=tag, simple_value=row[member])
                        file_writer.add_summary(Summary(value=[value]), step)
                else:
                    key = tag if len(self.names) == 1 else f"{name}/{tag}"
                    for step, row in zip(steps, rows, strict=True):
                        logger.log_metrics({key: row[member]}, step=step)

    def figure(self, member: int, tag: str, figure: Figure, step: int) -> None:
        """Add ``figure`` to ``member``'s TensorBoard run(s), then close it."""
        for index, logger in enumerate(self.loggers):
            if isinstance(logger, TensorBoardLogger):
                self._writer(index, member).add_figure(tag, figure, global_step=step, close=False)
        plt.close(figure)

    def hparams(self, member: int, params: dict[str, Any], metrics: dict[str, float], step: int) -> None:
        """``member``'s row of TensorBoard's HParams tab: its settings, and its final metrics, written as scalars at
        ``step`` (the tab reads the metrics' values from the run's scalars)."""
        for index, logger in enumerate(self.loggers):
            if isinstance(logger, TensorBoardLogger):
                writer = self._writer(index, member)
                for tag, value in metrics.items():
                    writer.add_scalar(tag, value, step)
                # The session's summaries only, not the experiment's: TensorBoard takes the first experiment summary it
                # finds as the whole log folder's list of columns, which would hide the other exercise's metrics
                # (and its rows' values); without one, it gathers the columns of every run it sees.
                _, start, end = hparams(params, metrics)
                writer.file_writer.add_summary(start)
                writer.file_writer.add_summary(end)
            else:
                logger.log_hyperparams({"member": self.names[member], **params}, metrics)

    def flush(self) -> None:
        for writer in self._writers.values():
            writer.flush()
        for logger in self.loggers:
            logger.save()

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
