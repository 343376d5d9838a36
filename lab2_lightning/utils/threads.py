"""How many CPU threads a training uses: one for a small problem, all the cores for a large one.

On a small matrix a step takes a fraction of a millisecond, and a second BLAS thread only costs: MKL's OpenMP
workers spin while they wait, so with any other busy process on the machine a 0.4 ms step of the lab became 20 ms
at two threads (measured on this project's 2-core machine, 10 members of Iris, under a load of 2). With one thread
the step stays at 0.4 ms and the numbers are bitwise the same. From about 10⁵ entries in the data matrix on, the
second thread pays (1000 × 100: 27 ms per step with one thread, 14 ms with two).
"""

from __future__ import annotations

from typing import Literal

import torch

from lab2_lightning.utils.errors import LabError

SMALL_PROBLEM = 100_000  # entries of the data matrix below which one thread is the faster choice (measured above)
# PyTorch's own choice (the cores it may use, or OMP_NUM_THREADS), taken before anything changes it.
DEFAULT_THREADS = torch.get_num_threads()

Threads = int | Literal["auto"]


def threads_for(setting: Threads, entries: int) -> int:
    """The thread count for a data matrix of ``entries`` entries: ``setting`` itself, or for ``auto`` one thread
    below :data:`SMALL_PROBLEM` entries and PyTorch's default above."""
    check_threads(setting)
    if setting == "auto":
        return 1 if entries < SMALL_PROBLEM else DEFAULT_THREADS
    return setting


def check_threads(setting: Threads) -> None:
    """Refuse, in one line, a thread count that is neither a positive whole number nor ``auto``."""
    if setting != "auto" and (isinstance(setting, bool) or not isinstance(setting, int) or setting < 1):
        raise LabError(f"--threads must be a positive whole number or auto, got {setting}")
