"""The one command line of Lab 2: ``lab2``, ``python scripts/train.py`` and ``python -m lab2_lightning``.

    lab2 fit --config factorise                      one experiment: LightningCLI's fit, validate, test, predict
    lab2 predict --ckpt_path CKPT --data.path new.csv
    lab2 lab --seeds 3                               the whole lab and its report (also with no command at all)
    lab2 report reports/results.json                 the report again, from saved results

The command is the first argument (:mod:`lab2_lightning.commands` runs it). :func:`run` does the same from Python
and returns what the command made (the tests use it); :func:`main`, the console script's function, returns nothing,
so a good run exits with status 0.

This module is light on purpose: it sets what must be set before torch loads, and catches SIGINT and SIGTERM
before the seconds of importing torch and Lightning begin, so that a run stopped at any moment ends with one line
and the signal's exit status.
"""

from __future__ import annotations

import os

# MKL, PyTorch's BLAS/LAPACK on x86 CPUs, picks code paths by the memory alignment of its inputs, so the last bits
# of a result can change from one process to the next. Conditional numerical reproducibility pins the path (at a
# few percent of speed), which makes CPU runs bitwise repeatable. It must be set before torch first calls MKL.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

import gc
import importlib
import sys
from types import ModuleType
from typing import Any

from lab2_lightning.utils.signals import Stopped, ignore_signals, stop_on_signals

COMMANDS_MODULE = "lab2_lightning.commands"  # imported on the first run: torch and Lightning


def run(args: list[str] | None = None) -> Any:
    """Run a command (``None``: the command line) and return what it made: the results of ``fit`` or ``lab``, the
    CSV of ``predict``, the report of ``report``. Bad input exits with status 2 and one ``error:`` line; a run
    stopped by SIGINT or SIGTERM exits with 130 or 143 and one line saying what it kept."""
    args = sys.argv[1:] if args is None else list(args)
    try:
        with stop_on_signals():
            return _import_commands().run(args)
    except Stopped as stop:
        print(f"error: {stop.message()}", file=sys.stderr)
        raise SystemExit(stop.exit_status) from stop


def _import_commands() -> ModuleType:
    """:mod:`lab2_lightning.commands`, which imports torch and Lightning: seconds (a stop is caught then too).

    Those imports make ~400,000 objects that live until the process ends, with next to no garbage (12,000 objects,
    measured). The collector would walk them over and over while they are made (~1 s here), so it is off meanwhile;
    afterwards they are moved out of its sight, not walked by every full collection nor by the one at exit (2 s of
    CPU here). Only the first time: a caller's own garbage is collected first, not frozen with them, and a caller
    that had turned the collector off keeps it off.
    """
    if COMMANDS_MODULE in sys.modules:
        return sys.modules[COMMANDS_MODULE]
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        return importlib.import_module(COMMANDS_MODULE)
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def main(args: list[str] | None = None) -> None:
    """The console script ``lab2``, ``scripts/train.py`` and ``python -m lab2_lightning``: :func:`run`, returning
    nothing, since a console script passes what its function returns to ``sys.exit`` (a dict would exit 1)."""
    try:
        run(args)
    except SystemExit as exit_:
        if isinstance(exit_.__cause__, Stopped):
            # The process ends now, and the default handlers are back: another signal would kill it mid-exit.
            # (Only here: a notebook that called run() keeps its Ctrl-C.)
            ignore_signals()
        raise
