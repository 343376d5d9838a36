"""The speed table: the whole lab against its floor, quiet and beside one CPU-bound process.

The floor is what no implementation can beat: a fresh interpreter importing torch and Lightning, plus the lab's own
plain loops for the same trainings (Exercise 1: ten seeds at rank 2 and seed 0 at ranks 1, 3, 4, 1000 steps each;
Exercise 2: ten seeds, 100 steps each), in one thread as the lab runs them. Each row is the median of --repeats
runs, each a fresh process. Prints a Markdown table; no asserts.

    python scripts/benchmark.py [--repeats 3] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLOOR = """
import torch, lightning, torchmetrics  # the imports every run pays
torch.set_num_threads(1)
from lab2_lightning.data import TableDataModule
from lab2_lightning.models.reference import gd_factorise_ad, sgd_mlp
A = TableDataModule().train_x
for seed, rank in [*((s, 2) for s in range({seeds})), (0, 1), (0, 3), (0, 4)]:
    torch.manual_seed(seed); gd_factorise_ad(A, rank)
mlp = TableDataModule(preprocessing="divide_by_variance", val_size=50)
for seed in range({seeds}):
    torch.manual_seed(seed); sgd_mlp(mlp.train_x.float(), mlp.train_y)
"""


def seconds(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="two seeds instead of ten, one repeat")
    options = parser.parse_args()
    seeds, repeats = (2, 1) if options.quick else (10, options.repeats)
    rows = []
    for load in ("quiet", "beside one CPU-bound process"):
        burner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if load != "quiet" else None
        try:
            with tempfile.TemporaryDirectory() as work:
                floor = [seconds([sys.executable, "-c", FLOOR.format(seeds=seeds)], Path(work)) for _ in range(repeats)]
                lab = [
                    seconds(
                        [sys.executable, "-m", "lab2_lightning", "--seeds", str(seeds), "--resume", "false"], Path(work)
                    )
                    for _ in range(repeats)
                ]
        finally:
            if burner is not None:
                burner.kill()
        rows.append((load, statistics.median(floor), statistics.median(lab)))
    print(f"whole lab, {seeds} seeds, median of {repeats} fresh processes\n")
    print("| machine state | floor: imports + plain loops (s) | lab2 (s) | lab2 / floor |")
    print("|---|---|---|---|")
    for load, floor, lab in rows:
        print(f"| {load} | {floor:.2f} | {lab:.2f} | {lab / floor:.2f}× |")


if __name__ == "__main__":
    main()
