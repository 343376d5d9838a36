"""The folder a whole lab writes to, ``log_dir/lab/version_N``: claimed atomically, locked while in use, and found
again to continue a lab that was stopped.

A lab records its settings in ``lab.json`` when it starts and its results in ``results.json`` when it ends, and
holds an exclusive lock on ``lock`` while it runs (``flock``: the system releases it when the process ends, however
it ends). A folder with settings, without results and not locked is a stopped lab, which a lab of the same settings
continues: a scheduler that requeues a job with the same command line gets the job's own folder back. (``flock``
is POSIX: Linux and macOS.)
"""

from __future__ import annotations

import fcntl
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab2_lightning.lab.run_folder import VERSION, claim_version
from lab2_lightning.utils.atomic import write_json

SETTINGS = "lab.json"
RESULTS = "results.json"


@dataclass
class LabFolder:
    """A lab's folder and the open file that holds its lock (closing it, or the process ending, releases it)."""

    path: Path
    lock: Any
    resumed: bool

    def release(self) -> None:
        self.lock.close()


# The locks this process holds, by folder. ``flock`` locks belong to an open file, so a second open of the same lock
# file in this process would be refused like another process's: a later run in the same process (a resume after a
# fit, from Python or the tests) takes the one it holds instead.
_HELD: dict[Path, Any] = {}


def lock(folder: Path) -> Any | None:
    """The open, exclusively locked ``folder/lock``; ``None`` when another process holds it. (A single run's folder
    is locked the same way while a resume continues it.)"""
    key = folder.resolve()
    held = _HELD.get(key)
    if held is not None and not held.closed:
        return held
    handle = open(folder / "lock", "a")  # noqa: SIM115 (held open for the lab's whole run)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    _HELD[key] = handle
    return handle


def versions(root: Path) -> list[Path]:
    """The ``version_N`` folders under ``root``, newest (largest N) first."""
    found = [(int(m.group(1)), p) for p in root.glob("version_*") if (m := VERSION.fullmatch(p.name)) and p.is_dir()]
    return [path for _, path in sorted(found, reverse=True)]


def stopped_lab(root: Path, settings: dict[str, Any]) -> LabFolder | None:
    """The newest lab under ``root`` that was stopped with these settings, locked for this process; ``None`` if
    there is none (or every such lab is running in another process)."""
    for folder in versions(root):
        if (folder / RESULTS).exists() or not (folder / SETTINGS).is_file():
            continue
        try:
            saved = json.loads((folder / SETTINGS).read_text())
        except (OSError, ValueError):
            continue  # not a lab's folder, or a damaged one: never continued
        if saved != settings:
            continue
        handle = lock(folder)
        if handle is None:
            continue  # running in another process
        if (folder / RESULTS).exists():  # that process finished it while this one looked
            handle.close()
            continue
        return LabFolder(folder, handle, resumed=True)
    return None


def open_lab_folder(root: Path, settings: dict[str, Any], resume: bool) -> LabFolder:
    """The stopped lab of these settings to continue (with ``resume``), else a new version folder; either locked."""
    if resume and root.is_dir():
        found = stopped_lab(root, settings)
        if found is not None:
            return found
    folder = root / f"version_{claim_version(root)}"
    handle = lock(folder)  # a new folder: no other lab takes it before its lab.json exists
    assert handle is not None
    write_json(folder / SETTINGS, settings)
    return LabFolder(folder, handle, resumed=False)


def mark_finished(folder: Path, results: dict[str, Any]) -> None:
    """Keep the lab's results in its own folder too (the report folder is shared by every lab): the folder is then
    finished, never continued, and ``lab2 report`` can rebuild its report from it."""
    write_json(folder / RESULTS, results)
