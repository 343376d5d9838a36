"""One way to claim a run's folder: made with ``mkdir``, which fails if the folder exists, so two runs started at
once never share one and no run writes over another's outputs. A run that continues (a resume, a stopped whole
lab) holds a lock on its folder instead, so two processes never continue the same run.
"""

from __future__ import annotations

import fcntl
import os
import re
import time
from pathlib import Path

from lab2_lightning.errors import LabError

VERSION = re.compile(r"version_(\d+)")


def claim_new(parent: Path, name: str | None = None) -> Path:
    """Create and return ``parent/name``, or, without a name, the next free ``parent/version_N``."""
    parent.mkdir(parents=True, exist_ok=True)
    if name is not None:
        try:
            (parent / name).mkdir()
        except FileExistsError:
            raise LabError(
                f"{parent / name} already exists: a run never writes over another's outputs; name a new version, "
                "or continue that run with --ckpt_path"
            ) from None
        return parent / name
    taken = [int(m.group(1)) for entry in parent.iterdir() if (m := VERSION.fullmatch(entry.name))]
    number = max(taken, default=-1) + 1
    while True:
        try:
            (parent / f"version_{number}").mkdir()
            return parent / f"version_{number}"
        except FileExistsError:  # another run took it a moment ago
            number += 1


_held: dict[Path, int] = {}


def hold(folder: Path) -> bool:
    """Lock ``folder`` for the rest of this process (a lock file inside it); ``False`` if another process holds it.
    The operating system releases the lock when the process ends, however it ends."""
    folder = folder.resolve()
    if folder in _held:
        return True
    descriptor = os.open(folder / ".lock", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return False
    _held[folder] = descriptor
    return True


def release(folder: Path) -> None:
    descriptor = _held.pop(folder.resolve(), None)
    if descriptor is not None:
        os.close(descriptor)


def newest_last_checkpoint(parent: Path) -> Path:
    """The ``last.ckpt`` most recently written under ``parent/version_*/checkpoints``: what ``--ckpt_path last``
    continues."""
    found = [p for p in parent.glob("*/checkpoints/last.ckpt") if VERSION.fullmatch(p.parent.parent.name)]
    if not found:
        raise LabError(f"--ckpt_path last: no run under {parent} has a last.ckpt")
    return max(found, key=lambda p: p.stat().st_mtime_ns)


def global_rank() -> int:
    """This process's rank in a torchrun or SLURM launch (0 outside one)."""
    return int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", 0)))


def launch_marker(parent: Path) -> Path | None:
    """Where the first process of a torchrun or SLURM launch of several processes names its run's folder for the
    others: a file in ``parent`` named after the launch (torchrun's rendezvous id, unique with ``--standalone``;
    SLURM's job and step). None outside such a launch."""
    if int(os.environ.get("WORLD_SIZE", os.environ.get("SLURM_NTASKS", 1))) < 2:
        return None
    run_id = os.environ.get("TORCHELASTIC_RUN_ID", "none")
    if run_id == "none" and "SLURM_JOB_ID" in os.environ:
        run_id = f"slurm_{os.environ['SLURM_JOB_ID']}_{os.environ.get('SLURM_STEP_ID', 0)}"
    return None if run_id == "none" else parent / f".launch_{run_id}"


def wait_for_folder(marker: Path, timeout: float = 300.0) -> Path:
    """The folder the first process of the launch named in ``marker``, once it has."""
    deadline = time.monotonic() + timeout
    while not marker.is_file():
        if time.monotonic() > deadline:
            raise LabError(f"{marker}: the launch's first process named no run folder in {timeout:.0f} s")
        time.sleep(0.1)
    return Path(marker.read_text())
