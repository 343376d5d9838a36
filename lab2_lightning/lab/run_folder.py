"""The folder of a new single run, ``<root>/lightning_logs/version_N``, claimed atomically.

Lightning numbers a new run by listing the folders and taking the next number, and creates the folder later, when
it first writes there: two runs started at the same moment in the same directory can take the same number and write
into one folder (one run's results.json and checkpoints then replace the other's). Here the folder is created before
the Trainer is built, with a ``mkdir`` that fails when the folder exists, and the logger is given its number.
"""

from __future__ import annotations

import re
from pathlib import Path

VERSION = re.compile(r"version_(\d+)")


def claim_version(logs: Path) -> int:
    """Create ``logs/version_N`` and return N: one more than the largest N taken, as Lightning numbers them, or the
    next free one after it when another process created that folder first."""
    logs.mkdir(parents=True, exist_ok=True)
    taken = [int(match.group(1)) for path in logs.iterdir() if (match := VERSION.fullmatch(path.name))]
    version = max(taken, default=-1) + 1
    while True:
        try:
            (logs / f"version_{version}").mkdir()
        except FileExistsError:
            version += 1
            continue
        return version
