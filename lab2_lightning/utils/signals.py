"""Stopping on SIGINT (Ctrl-C) and SIGTERM (a scheduler's "stop now") at any moment, with one line, never a
traceback and never a status that looks like success.

Python's default for SIGTERM kills the process before any cleanup (no message, half-written files left), and its
Ctrl-C is a ``KeyboardInterrupt``, which Lightning turns into ``sys.exit(1)`` mid-fit. :func:`stop_on_signals`
replaces both by one exception, :class:`Stopped`: it unwinds like any error (temporary files are removed, writers
closed), it is a ``BaseException`` so that no ``except Exception`` swallows it, and Lightning re-raises it after its
own cleanup. The layers it passes through set what is kept (``kept``: a fit's checkpoint, then the whole lab's
folder, the outer layer last); the entry point prints it and exits with the shell's status for the signal,
``128 + signum``: 130 for SIGINT, 143 for SIGTERM.

Lightning, during ``fit``, puts its own SIGTERM handler in front of the one installed here and calls both.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(BaseException):
    """The process was asked to stop by ``signum``; ``kept`` says what it leaves behind and how to continue."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.kept: str | None = None

    @property
    def exit_status(self) -> int:
        return 128 + self.signum

    def message(self) -> str:
        return f"stopped by {signal.Signals(self.signum).name}; {self.kept or 'nothing was written'}"


class _Deferral:
    """How many :func:`signals_deferred` blocks are running, and the signal that came during them."""

    depth = 0
    pending: int | None = None


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    ignore_signals()  # a second Ctrl-C while the first unwinds would interrupt the cleanup itself
    if _Deferral.depth:
        _Deferral.pending = signum
        return
    raise Stopped(signum)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold a stop back while the block runs (a swap that must not stop half-way); a SIGINT or SIGTERM that came
    meanwhile raises :class:`Stopped` as the block ends.

    Python runs its signal handlers in the main thread, whichever thread the system delivered the signal to, so the
    handler itself defers: blocking the signal (``pthread_sigmask``) would hold it back from this thread only, and
    a lab has others (TensorBoard's writers, the progress bar's monitor).
    """
    _Deferral.depth += 1
    try:
        yield
    finally:
        _Deferral.depth -= 1
        if not _Deferral.depth and _Deferral.pending is not None:
            signum, _Deferral.pending = _Deferral.pending, None
            raise Stopped(signum)


def ignore_signals() -> None:
    """From now on SIGINT and SIGTERM do nothing: the process is ending, and its exit must not be cut short."""
    for signum in SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Inside, SIGINT and SIGTERM raise :class:`Stopped`; the previous handlers are restored after."""
    previous = {signum: signal.signal(signum, _raise_stopped) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
