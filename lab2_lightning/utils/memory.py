"""How much memory a run may still take, to refuse a model too large for the machine before it is drawn.

Linux hands out memory it does not have (overcommit): a matrix far too large is allocated, and the kernel's
out-of-memory killer ends the process (or another one) once the matrix is filled in, with no message.
"""

from __future__ import annotations

from lab2_lightning.errors import MEMORY_ADVICE, LabError

GiB = 2**30


def available_bytes() -> int | None:
    """The memory the kernel says is available to new allocations (``MemAvailable``); None where it does not say."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_fits(needed: int, what: str) -> None:
    """Refuse ``what`` (needing ``needed`` bytes) when it would not fit in the available memory."""
    available = available_bytes()
    if available is not None and needed > available:
        raise LabError(
            f"out of memory: {what} need {needed / GiB:,.1f} GiB, and {available / GiB:,.1f} GiB is available; "
            f"{MEMORY_ADVICE}"
        )
