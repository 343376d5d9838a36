"""The project's own error: one line, meant for the user, printed by the CLI with exit status 2."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class LabError(Exception):
    """A problem with the user's input (data, configuration, checkpoint), not a bug in this package.

    The message is a single line that names what is wrong and where (file, row, column, option), so the
    CLI can print it as it is instead of a traceback.
    """


def lab_error_message(error: BaseException) -> str | None:
    """The message of a :class:`LabError`; ``None`` for anything else."""
    return str(error) if isinstance(error, LabError) else None


@contextmanager
def exit_on_user_error(message: Callable[[BaseException], str | None] = lab_error_message) -> Iterator[None]:
    """Turn a user's error raised inside into one ``error:`` line on stderr and exit status 2.

    ``message`` gives the line for an error meant for the user and ``None`` for a bug, which keeps its traceback.
    """
    try:
        yield
    except Exception as error:
        line = message(error)
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr)
        raise SystemExit(2) from None
