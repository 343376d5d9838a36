"""How fast lab2 reads data files, against a plain ``pandas.read_csv`` of the same file, and how much memory a read
takes: the yardstick for "user data read at library speed".

    python scripts/bench_reading.py [--quick]

Prints Markdown tables. The files (random floats, as ``np.savetxt`` writes them with ``%.6g``) go to a temporary
folder, removed afterwards. Times are medians of 3 reads, taken in turns so that a busy machine slows both alike;
memory is the peak resident size above the interpreter's (with its libraries imported), each read in a fresh
process (Linux only).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from lab2_lightning.data.reading import packaged_iris, read_data, read_entries

# (rows, columns) of the tables, full and --quick; and the number of (row, column, value) lines in the entries file.
TABLE_SHAPES = {False: [(3, 100_000), (300, 30_000), (200_000, 50)], True: [(3, 20_000), (100, 10_000), (40_000, 50)]}
ENTRY_LINES = {False: 2_000_000, True: 400_000}
# Entries of the files whose reading memory is measured.
MEMORY_ENTRIES = {False: 10_000_000, True: 2_000_000}
REPEATS = 3


def write_table(path: Path, rows: int, cols: int, seed: int = 0) -> Path:
    np.savetxt(path, np.random.default_rng(seed).standard_normal((rows, cols)), delimiter=",", fmt="%.6g")
    return path


def write_entries(path: Path, lines: int, seed: int = 0) -> Path:
    """``lines`` distinct (row, column) pairs of a 10-times-denser-than-needed matrix, with random values."""
    rng = np.random.default_rng(seed)
    cols = max(1, int((10 * lines) ** 0.5))
    flat = rng.choice(cols * cols, size=lines, replace=False)
    triples = np.column_stack([flat // cols, flat % cols, rng.standard_normal(lines)])
    np.savetxt(path, triples, delimiter=",", fmt=["%d", "%d", "%.6g"])
    return path


def median_seconds(read: Callable[[], object], other: Callable[[], object]) -> tuple[float, float]:
    """The median times of ``read`` and ``other``, run in turns, each after a garbage collection: a collection the
    previous read left due would otherwise land in the next, and reads of wide files create many objects."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(REPEATS):
        for spent, function in zip(times, (read, other), strict=True):
            gc.collect()
            start = time.perf_counter()
            function()
            spent.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def reading_rows(quick: bool) -> list[dict]:
    """One row per file: its shape, entries, and the seconds of ``pandas.read_csv(path, header=None)`` and of lab2's
    reader (``read_data`` for a table, ``read_entries`` for triples)."""
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        files = [(packaged_iris(), "150 x 4 (Iris, labelled)", 600, read_data)]
        for n_rows, n_cols in TABLE_SHAPES[quick]:
            path = write_table(Path(folder) / f"{n_rows}x{n_cols}.csv", n_rows, n_cols)
            files.append((path, f"{n_rows:,} x {n_cols:,}", n_rows * n_cols, read_data))
        lines = ENTRY_LINES[quick]
        path = write_entries(Path(folder) / "entries.csv", lines)
        files.append((path, f"{lines:,} entries (triples)", lines, read_entries))
        for path, shape, entries, reader in files:
            pandas_s, lab2_s = median_seconds(lambda p=path: pd.read_csv(p, header=None), lambda p=path, r=reader: r(p))
            rows.append(
                {"shape": shape, "entries": entries, "pandas_s": pandas_s, "lab2_s": lab2_s, "ratio": lab2_s / pandas_s}
            )
    return rows


# Run in a fresh interpreter: reads argv[2] with argv[1] ("pandas" or "lab2") and prints the resident size before
# and its peak during the read (KiB). Linux's peak (VmHWM) is reset first: ru_maxrss would still hold the peak of the
# imports, which can exceed a small read's.
PEAK = """
import json, sys
import pandas as pd
from lab2_lightning.data.reading import read_data
def resident(field):
    return int(dict(line.split(":", 1) for line in open("/proc/self/status"))[field].split()[0])
reader, path = sys.argv[1:]
open("/proc/self/clear_refs", "w").write("5")
before = resident("VmRSS")
data = pd.read_csv(path, header=None) if reader == "pandas" else read_data(path)
print(json.dumps([before, resident("VmHWM")]))
"""


def peak_bytes(reader: str, path: Path) -> int:
    """The peak resident memory a read adds, in bytes, measured in a fresh process (on Linux)."""
    done = subprocess.run([sys.executable, "-c", PEAK, reader, str(path)], capture_output=True, text=True, check=True)
    before, peak = json.loads(done.stdout)
    return (peak - before) * 1024


def memory_rows(quick: bool) -> list[dict]:
    """One row per read: what, the file's entries, and the peak memory it adds (MB and bytes per entry)."""
    entries = MEMORY_ENTRIES[quick]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        csv_path = write_table(Path(folder) / "table.csv", entries // 50, 50)
        reads = [("pandas.read_csv, CSV", "pandas", csv_path), ("lab2 read_data, CSV (float64)", "lab2", csv_path)]
        for dtype in (np.float32, np.float64):
            path = Path(folder) / f"table_{np.dtype(dtype).name}.npy"
            np.save(path, np.random.default_rng(0).standard_normal((entries // 50, 50)).astype(dtype))
            reads.append((f"lab2 read_data, .npy {np.dtype(dtype).name}", "lab2", path))
        for what, reader, path in reads:
            added = peak_bytes(reader, path)
            rows.append({"read": what, "entries": entries, "peak_mb": added / 1e6, "bytes_per_entry": added / entries})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller files: done in under a minute")
    quick = parser.parse_args().quick
    print("| file | entries | pandas.read_csv (s) | lab2 (s) | ratio |")
    print("|---|---:|---:|---:|---:|")
    for row in reading_rows(quick):
        seconds = f"{row['pandas_s']:.3f} | {row['lab2_s']:.3f} | {row['ratio']:.2f}"
        print(f"| {row['shape']} | {row['entries']:,} | {seconds} |")
    print()
    print("| read | entries | peak memory added (MB) | bytes per entry |")
    print("|---|---:|---:|---:|")
    for row in memory_rows(quick):
        print(f"| {row['read']} | {row['entries']:,} | {row['peak_mb']:.0f} | {row['bytes_per_entry']:.1f} |")


if __name__ == "__main__":
    main()
