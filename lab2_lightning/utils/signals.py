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


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    ignore_signals()  # a second Ctrl-C while the first unwinds would interrupt the cleanup itself
    raise Stopped(signum)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back while the block runs (a swap that must not stop half-way); one that came
    meanwhile is delivered, and raises :class:`Stopped`, as the block ends."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


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
