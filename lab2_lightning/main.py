"""The entry point of ``lab2``, ``python -m lab2_lightning`` and ``scripts/train.py``: the one error boundary.

Everything a user can get wrong ends here as one ``error:`` line and exit status 2: our :class:`LabError`,
jsonargparse's verdict on an option, Lightning's ``MisconfigurationException``, the operating system's
``OSError`` (no space, no permission), and memory running out (a matrix or rank too large for the machine).
Ctrl-C and SIGTERM end a run with one line and status 130 or 143; the last checkpoint is kept, so the same command
continues. Anything else is a bug and keeps its traceback.

This module imports neither torch nor Lightning, so the signals are caught before the seconds those imports take.
"""

from __future__ import annotations

import gc
import importlib
import os
import re
import signal
import sys
from types import FrameType, ModuleType
from typing import Any

from lab2_lightning.errors import MEMORY_ADVICE, LabError

# MKL (PyTorch's BLAS on x86) picks code paths by memory alignment, so the last bits of a result could differ from
# one process to the next; its reproducible mode makes CPU runs bitwise repeatable. Set before torch loads.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}
CONTINUE = "the checkpoints are kept: the whole lab continues when run again, a fit with --ckpt_path last"


class Stopped(BaseException):
    """Raised by the signal handler. A ``BaseException`` that is not ``KeyboardInterrupt``: Lightning then tears
    the run down and re-raises it, where for ``KeyboardInterrupt`` it would exit with status 1 itself."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_importing: list[int] | None = None  # while the libraries import: the signals received meanwhile


def _stop(signum: int, frame: FrameType | None) -> None:
    if _importing is not None:  # raised inside an import, it would leave a module half made: raised after it
        _importing.append(signum)
        return
    raise Stopped(signum)


# How PyTorch's allocators say that memory ran out (a RuntimeError; on CUDA its subclass OutOfMemoryError).
OUT_OF_MEMORY = re.compile(r"can't allocate memory|not enough memory|out of memory", re.IGNORECASE)


def user_error(error: BaseException) -> str | None:
    """The one-line message of a user's error (looking through the causes jsonargparse and Lightning wrap around
    it), or ``None`` for a bug."""
    from argparse import ArgumentError

    from lightning.fabric.utilities.exceptions import MisconfigurationException

    while error is not None:
        if isinstance(error, (LabError, MisconfigurationException)):
            return " ".join(str(error).split())
        if isinstance(error, ArgumentError):
            return option_error(str(error))
        if isinstance(error, MemoryError) or (isinstance(error, RuntimeError) and OUT_OF_MEMORY.search(str(error))):
            asked = re.search(r"allocate (\d+) bytes", str(error))
            size = f" ({int(asked[1]) / 2**30:,.1f} GiB asked for at once)" if asked else ""
            return f"out of memory{size}: {MEMORY_ADVICE}"
        if isinstance(error, OSError) and error.strerror:
            return f"{error.filename}: {error.strerror}" if error.filename else error.strerror
        error = error.__cause__ or error.__context__
    return None


# jsonargparse's headings around the innermost complaint, one per level of a nested option.
_HEADINGS = ("Does not validate", "Subtypes:", "Errors:", "Problem with given class_path", "Given value")


def option_error(text: str) -> str:
    """jsonargparse's account of a bad option in one line: the option's dotted name and the innermost complaint."""
    keys = re.findall(r'Parser key "([^"]+)"', text)
    if not keys:
        return " ".join(text.split()) + " (see --help)"
    same_line, *after = text.split(f'Parser key "{keys[-1]}":', 1)[1].splitlines()
    if same_line.strip():  # 'Parser key "config": File does not exist: ...'
        after = [same_line]
    detail = next(
        (line.strip(" -") for line in after if line.strip(" -") and not line.strip(" -").startswith(_HEADINGS)), ""
    )
    return f"--{'.'.join(keys)}: {detail} (see --help)"


def import_cli() -> ModuleType:
    """:mod:`lab2_lightning.cli`, which imports torch and Lightning: seconds. They make some 400,000 objects that
    live as long as the process, and next to no garbage, which the collector would walk again and again meanwhile
    (a quarter of the import's time here): it is off during the first import, and the survivors are moved out of
    its sight after."""
    global _importing
    if "lab2_lightning.cli" in sys.modules:
        return sys.modules["lab2_lightning.cli"]
    enabled = gc.isenabled()
    gc.disable()
    _importing = []
    try:
        importlib.import_module("lab2_lightning.lab.run_lab")  # and its figures' matplotlib
        return importlib.import_module("lab2_lightning.cli")
    finally:
        received, _importing = _importing, None
        gc.freeze()
        if enabled:
            gc.enable()
        if received:
            raise Stopped(received[0])


def main(args: list[str] | None = None) -> Any:
    """Run ``lab2`` with ``args`` (default: the command line) and return what the command made; errors end the
    process as described above."""
    previous = {signum: signal.signal(signum, _stop) for signum in EXIT_STATUS}
    try:
        return import_cli().run(sys.argv[1:] if args is None else list(args))
    except Stopped as stop:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the message short
        print(f"error: stopped by {stop}; {CONTINUE}", file=sys.stderr)
        raise SystemExit(EXIT_STATUS[stop.signum]) from None
    except Exception as error:
        message = user_error(error)
        if message is None:
            raise
        sys.stderr.write(f"error: {message}\n")  # one write: DDP's processes share the terminal
        sys.stderr.flush()
        raise SystemExit(2) from None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def console() -> None:
    """The console script ``lab2``: :func:`main`, returning nothing (a console script exits with what its function
    returns, and a dict would exit with status 1)."""
    main()
