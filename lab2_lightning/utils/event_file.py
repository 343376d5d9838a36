"""A TensorBoard event file written directly: each event is framed and checksummed by TensorBoard's own
``RecordWriter``, in the caller's thread, into a buffered file.

Why not ``SummaryWriter``: without TensorFlow, TensorBoard's writer opens the file, appends one event and closes it
again for every event, on a thread of its own. That costs ~150 µs of CPU per point, and the lab writes ~15,000
points, so the thread competed with the training for the interpreter (and for the second core, under load). Here
a point costs ~15 µs; :meth:`EventFile.flush` (after each batch of points, ~2 µs) makes them visible to a running
TensorBoard.
"""

from __future__ import annotations

import io
import itertools
import os
import socket
import time
from collections.abc import Iterable
from pathlib import Path

import PIL.Image
from tensorboard.compat.proto.event_pb2 import Event, SessionLog
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer.record_writer import RecordWriter

_FILES = itertools.count()  # tells apart the files one process opens within a second


class EventFile:
    """One TensorBoard event file in ``folder`` (created if needed): TensorBoard shows a folder as one run, and
    reads every event file in it.

    Args:
        folder: the run's folder.
    """

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        # TensorBoard finds event files by "tfevents" in the name and reads a folder's files in the order of their
        # names. The rest is its own writer's naming plus a suffix: without it, a file opened in the same second as
        # the Lightning logger's own would get that file's very name.
        stamp = f"{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.{next(_FILES)}"
        name = f"events.out.tfevents.{stamp}.lab2"
        self.path = folder / name
        self._file = open(self.path, "wb")  # noqa: SIM115 -- closed by close(), which its owner calls
        self._records = RecordWriter(self._file)
        self._write(Event(wall_time=time.time(), file_version="brain.Event:2"))  # what every event file starts with

    def _write(self, event: Event) -> None:
        self._records.write(event.SerializeToString())

    def start(self, step: int) -> None:
        """Mark a (re)start of the run at ``step``: TensorBoard drops every event at ``step`` or later that it read
        before this one, in this file or an older one of the run's folder.

        A run continued from a checkpoint needs it: the run that stopped may have logged steps after its last
        checkpoint, which the continued run logs again. So does a run started afresh in a folder that still holds
        a stopped run's files.
        """
        self._write(Event(wall_time=time.time(), step=step, session_log=SessionLog(status=SessionLog.START)))

    def summary(self, summary: Summary, step: int) -> None:
        """Add ``summary`` at ``step``."""
        self._write(Event(wall_time=time.time(), step=step, summary=summary))

    def scalars(self, tag: str, points: Iterable[tuple[int, float]]) -> None:
        """Add ``(step, value)`` points of the scalar ``tag``."""
        now = time.time()
        for step, value in points:
            summary = Summary(value=[Summary.Value(tag=tag, simple_value=value)])
            self._write(Event(wall_time=now, step=step, summary=summary))

    def image(self, tag: str, png: bytes, step: int) -> None:
        """Add an image, given as the bytes of a PNG file."""
        width, height = PIL.Image.open(io.BytesIO(png)).size
        picture = Summary.Image(height=height, width=width, colorspace=4, encoded_image_string=png)
        self.summary(Summary(value=[Summary.Value(tag=tag, image=picture)]), step)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()
