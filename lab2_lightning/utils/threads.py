"""How many CPU threads a run uses (``--threads auto``).

PyTorch starts one OpenMP thread per core, and its threads spin while they wait for each other. On a tiny matrix a
second thread only adds that waiting. On a large one every thread helps, unless another process already keeps a
core busy: then the thread that shares its core falls behind, and each step waits for it (5 to 30 times slower on
2 cores). So: one thread for small data, else one per core that is idle when the run starts.
"""

from __future__ import annotations

import os
import time

SMALL = 100_000  # entries below which one thread is fastest


def busy_cores(window: float = 0.2) -> float | None:
    """How many cores other processes keep busy, measured over ``window`` seconds (Linux's /proc/stat); None
    where it cannot be read."""

    def ticks() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
        return sum(fields[:8]), fields[3] + fields[4]  # all time (without guests), idle + iowait

    try:
        total0, idle0 = ticks()
        time.sleep(window)
        total1, idle1 = ticks()
    except (OSError, ValueError, IndexError):
        return None
    cores = os.cpu_count() or 1
    return cores * (1 - (idle1 - idle0) / max(total1 - total0, 1))


def auto_threads(entries: int) -> int | None:
    """The threads for a matrix of ``entries`` entries: 1 below :data:`SMALL`, else the cores this process may use
    that no other process keeps busy (at least 1); None: PyTorch's default, where that cannot be measured."""
    if entries < SMALL:
        return 1
    busy = busy_cores()
    if busy is None:
        return None
    return max(1, len(os.sched_getaffinity(0)) - round(busy))
