"""The speed tables, section by section; each prints a Markdown table, none asserts anything.

- ``lab``: the whole lab against its floor, quiet and beside one CPU-bound process. The floor is what no
  implementation can beat: a fresh interpreter importing torch and Lightning, plus the lab's own plain loops for the
  same trainings (Exercise 1: the seeds at rank 2 and seed 0 at ranks 1, 3, 4; with 10%, 20% and 40% of the entries
  hidden, the seeds and iterative SVD imputation; Exercise 2: the seeds), in one thread as the lab runs them.
- ``reading``: reading CSV files of several shapes, against ``pandas.read_csv`` (scripts/bench_reading.py).
- ``memory``: peak memory of reading a matrix, per entry (scripts/bench_reading.py).
- ``training_memory``: peak memory of a fit on a float32 matrix file, after 10 and 50 steps, in float32 and float64.
- ``ddp_memory``: the peak private memory of each process of a fit on a float32 matrix file, on one process and on
  two (Lightning's DDP on CPU).
- ``completion``: one gradient step of the factorisation on a sparse matrix's entries, in Lightning against a
  plain PyTorch loop on the same entries, and the held-out RMSE beside column means and iterative SVD imputation.
- ``large``: ``lab2 fit --config large``, quiet and beside one CPU-bound process, and how close it ends to the optimum.

    python scripts/benchmark.py [--sections lab,reading,...] [--repeats 3] [--quick]    # every section by default
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

FLOOR = """
import torch, lightning, torchmetrics  # the imports every run pays
torch.set_num_threads(1)
from lab2_lightning.data import TableDataModule
from lab2_lightning.models.linalg import hard_impute
from lab2_lightning.models.reference import gd_factorise_ad, gd_factorise_masked, sgd_mlp
A = TableDataModule().train_x
for seed, rank in [*((s, 2) for s in range({seeds})), (0, 1), (0, 3), (0, 4)]:
    torch.manual_seed(seed); gd_factorise_ad(A, rank)
for fraction in (0.1, 0.2, 0.4):
    data = TableDataModule(holdout=fraction)
    M = ~data.train_x.isnan()
    for seed in range({seeds}):
        torch.manual_seed(seed); gd_factorise_masked(data.train_x, M, 2)
    seen = data.training_entries()
    hard_impute(seen.row, seen.col, seen.value, (150, 4), 2)
mlp = TableDataModule(preprocessing="divide_by_variance", val_size=50)
for seed in range({seeds}):
    torch.manual_seed(seed); sgd_mlp(mlp.train_x.float(), mlp.train_y)
"""
BURN = [sys.executable, "-c", "while True: pass"]


def seconds(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


@contextmanager
def load(state: str) -> Iterator[None]:
    """``quiet``, or one CPU-bound process running beside."""
    burner = subprocess.Popen(BURN) if state != "quiet" else None
    try:
        yield
    finally:
        if burner is not None:
            burner.kill()


STATES = ("quiet", "beside one CPU-bound process")


def lab_section(quick: bool, repeats: int) -> None:
    seeds, repeats = (2, 1) if quick else (10, repeats)
    rows = []
    for state in STATES:
        with load(state), tempfile.TemporaryDirectory() as work:
            floor = [seconds([sys.executable, "-c", FLOOR.format(seeds=seeds)], Path(work)) for _ in range(repeats)]
            lab = [
                seconds(
                    [sys.executable, "-m", "lab2_lightning", "--seeds", str(seeds), "--resume", "false"], Path(work)
                )
                for _ in range(repeats)
            ]
        rows.append((state, statistics.median(floor), statistics.median(lab)))
    print(f"### Whole lab, {seeds} seeds, median of {repeats} fresh processes\n")
    print("| machine state | floor: imports + plain loops (s) | lab2 (s) | lab2 / floor |")
    print("|---|---|---|---|")
    for state, floor, lab in rows:
        print(f"| {state} | {floor:.2f} | {lab:.2f} | {lab / floor:.2f}× |")


def reading_section(quick: bool, repeats: int) -> None:
    from bench_reading import reading_rows

    print("### Reading a CSV: lab2 against pandas.read_csv\n")
    print("| file | entries | pandas.read_csv (s) | lab2 (s) | lab2 / pandas |")
    print("|---|---|---|---|---|")
    for row in reading_rows(quick):
        cells = f"{row['pandas_s']:.2f} | {row['lab2_s']:.2f} | {row['ratio']:.2f}×"
        print(f"| {row['shape']} | {row['entries']:,} | {cells} |")


def memory_section(quick: bool, repeats: int) -> None:
    from bench_reading import memory_rows

    print("### Peak memory of reading a matrix, above the interpreter's own\n")
    print("| read | entries | peak (MB) | bytes per entry |")
    print("|---|---|---|---|")
    for row in memory_rows(quick):
        print(f"| {row['read']} | {row['entries']:,} | {row['peak_mb']:.0f} | {row['bytes_per_entry']:.1f} |")


TRAIN_PEAK = """
import resource, sys
from lab2_lightning.main import main
try:
    main(sys.argv[1:])
finally:
    print("peak_kb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def training_peak_mb(work: Path, args: list[str]) -> float:
    """The peak resident memory of ``lab2 fit ARGS`` in a fresh process, in MB."""
    done = subprocess.run(
        [sys.executable, "-c", TRAIN_PEAK, "fit", *args, "--trainer.enable_progress_bar", "false"],
        cwd=work, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return int(done.stdout.split("peak_kb")[-1]) / 1024


def training_memory_section(quick: bool, repeats: int) -> None:
    """Peak memory of a fit on a float32 matrix file, after few and after many steps: flat, whatever the precision."""
    import numpy as np

    rows, cols = (2_000, 500) if quick else (20_000, 2_000)
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "A.npy"
        np.save(path, np.random.default_rng(0).standard_normal((rows, cols), dtype=np.float32))
        print(
            f"### Peak memory of a fit on a float32 {rows:,} × {cols:,} .npy ({path.stat().st_size / 2**20:.0f} MB)\n"
        )
        print("| precision | steps | peak (MB) |")
        print("|---|---|---|")
        for precision in ("32-true", "64-true"):
            for steps in (10, 50):
                args = [
                    "--config", "large", "--data", "lab2_lightning.data.TableDataModule", "--data.path", str(path),
                    "--data.label_column", "null", "--trainer.precision", precision, "--trainer.max_steps", str(steps),
                    "--data.steps_per_epoch", "10", "--trainer.logger", "false",
                ]  # fmt: skip
                print(f"| {precision} | {steps} | {training_peak_mb(Path(work), args):.0f} |")


PROCESS_PEAK = """
import os, sys, threading, time
from pathlib import Path
peak = 0  # the most private (anonymous) memory this process has held: a memory-mapped file's pages are shared


def watch() -> None:
    global peak
    while True:
        status = Path("/proc/self/status").read_text()
        peak = max(peak, int(status.split("RssAnon:")[1].split()[0]))
        time.sleep(0.01)


threading.Thread(target=watch, daemon=True).start()
from lab2_lightning.main import main
try:
    main(sys.argv[1:])
finally:
    print("process", os.environ.get("LOCAL_RANK", "0"), "peak_anon_kb", peak, flush=True)
"""


def ddp_memory_section(quick: bool, repeats: int) -> None:
    """What each process holds under DDP: the first the whole matrix (its yardsticks need it), the others their
    share, read from the memory-mapped file."""
    import numpy as np

    rows, cols = (4_000, 500) if quick else (20_000, 2_000)
    with tempfile.TemporaryDirectory() as work:
        path, script = Path(work) / "A.npy", Path(work) / "peak.py"
        np.save(path, np.random.default_rng(0).standard_normal((rows, cols), dtype=np.float32))
        script.write_text(PROCESS_PEAK)  # a file: Lightning's launcher starts the other processes with it
        size = path.stat().st_size / 2**20
        print(f"### Peak private memory per process, fit on a float32 {rows:,} × {cols:,} .npy ({size:.0f} MB)\n")
        print("| processes | process | peak private memory (MB) |")
        print("|---|---|---|")
        for devices in (1, 2):
            args = [
                "fit", "--config", "large", "--data", "lab2_lightning.data.TableDataModule", "--data.path", str(path),
                "--data.label_column", "null", "--trainer.max_steps", "10", "--data.steps_per_epoch", "10",
                "--trainer.logger", "false", "--trainer.enable_progress_bar", "false", "--trainer.accelerator", "cpu",
                "--trainer.devices", str(devices), *(["--trainer.strategy", "ddp"] if devices > 1 else []),
            ]  # fmt: skip
            done = subprocess.run([sys.executable, str(script), *args], cwd=work, check=True, capture_output=True,
                                  text=True)  # fmt: skip
            peaks = sorted(line.split()[1:4:2] for line in done.stdout.splitlines() if line.startswith("process "))
            for process, kb in peaks:
                print(f"| {devices} | {process} | {int(kb) / 1024:.0f} |")


def completion_section(quick: bool, repeats: int) -> None:
    """A factorisation of a sparse matrix's observed entries: the step in Lightning against the plain loop, both
    from the same start with the same step size, and what each method recovers of the hidden entries."""
    import lightning.pytorch as pl
    import torch

    from lab2_lightning.data import SyntheticDataModule
    from lab2_lightning.models import LowRankFactorisation
    from lab2_lightning.models.factorisation import estimates
    from lab2_lightning.models.linalg import hard_impute

    rows, cols, entries, steps = (10_000, 2_000, 200_000, 50) if quick else (100_000, 20_000, 2_000_000, 200)
    rank = 16
    # One Lightning epoch of all the steps: one validation, after the last.
    data = SyntheticDataModule(rows, cols, rank, noise=0.1, entries=entries, holdout=0.1, steps_per_epoch=steps)

    class StepTimer(pl.Callback):
        """Wall time from the second step's start to the last step's end (the first builds what is cached)."""

        def on_train_batch_start(self, trainer: pl.Trainer, *args: object) -> None:
            if trainer.global_step == 1:
                self.start = time.perf_counter()

        def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
            self.end = time.perf_counter()

    model = LowRankFactorisation(rows, cols, data.data_rms, rank=rank, seeds=[0], lr="auto", init="normal")
    U0, V0 = model.U[0].detach().clone(), model.V[0].detach().clone()
    timer = StepTimer()
    trainer = pl.Trainer(
        max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, callbacks=[timer],
    )  # fmt: skip
    trainer.fit(model, datamodule=data)
    lightning_step = (timer.end - timer.start) / (steps - 1)
    lr = model.lr()

    train, hidden = data.entries.batch(), data.hidden.batch()
    U, V = U0.requires_grad_(), V0.requires_grad_()
    for step in range(steps):
        if step == 1:
            start = time.perf_counter()
        loss = (torch.einsum("ij,ij->i", U[train["row"]], V[train["col"]]) - train["value"]).square().sum()
        loss.backward()
        with torch.no_grad():
            U -= lr * U.grad
            V -= lr * V.grad
            U.grad, V.grad = None, None
    plain_step = (time.perf_counter() - start) / (steps - 1)

    def rmse(values: torch.Tensor) -> float:
        return float((values - hidden["value"]).square().mean().sqrt())

    with torch.no_grad():
        plain_rmse = rmse(estimates(U, V, hidden))
    start = time.perf_counter()
    seen = data.training_entries()
    P, Q, rounds = hard_impute(seen.row, seen.col, seen.value, (rows, cols), rank)
    impute_s = time.perf_counter() - start
    print(f"### Completion: {rows:,} × {cols:,}, {entries:,} entries ({len(data.hidden):,} hidden), rank {rank}\n")
    print(f"Gradient descent: {steps} steps from a normal start, lr auto = {lr:.3g}, float32, "
          f"{torch.get_num_threads()} threads.\n")  # fmt: skip
    print("| method | time | held-out RMSE |")
    print("|---|---|---|")
    print(f"| lab2 (Lightning), per step | {1000 * lightning_step:.1f} ms | {model.hidden_rmse[0]:.4f} |")
    print(f"| plain PyTorch loop, per step | {1000 * plain_step:.1f} ms | {plain_rmse:.4f} |")
    print(f"| lab2 / plain | {lightning_step / plain_step:.2f}× | |")
    print(f"| iterative SVD imputation ({rounds} rounds) | {impute_s:.1f} s | {rmse(estimates(P, Q, hidden)):.4f} |")
    print(f"| column means | | {rmse(torch.zeros_like(hidden['value'])):.4f} |")


def large_section(quick: bool, repeats: int) -> None:
    """``--config large`` as a user runs it, in a fresh process, quiet and beside a CPU-bound one."""
    steps = ["--trainer.max_steps", "50"] if quick else []  # the config's 300
    rows = []
    for state in STATES:
        with load(state), tempfile.TemporaryDirectory() as work:
            command = [sys.executable, "-m", "lab2_lightning", "fit", "--config", "large", *steps,
                       "--trainer.enable_progress_bar", "false"]  # fmt: skip
            wall = seconds(command, Path(work))
            results = json.loads(next(Path(work).glob("lightning_logs/version_0/results.json")).read_text())
        rows.append((state, wall, results["runs"][0]["relative_gap"]))
    print(f"### configs/large.yaml: 20,000 × 2,000 at rank 16, {results['runs'][0]['steps']} steps, a fresh process\n")
    print("| machine state | wall time (s) | against quiet | GD above the SVD optimum |")
    print("|---|---|---|---|")
    for state, wall, gap in rows:
        print(f"| {state} | {wall:.1f} | {wall / rows[0][1]:.2f}× | {100 * max(gap, 0.0):.4f}% |")  # below: rounding


SECTIONS: dict[str, Callable[[bool, int], None]] = {
    "lab": lab_section,
    "reading": reading_section,
    "memory": memory_section,
    "training_memory": training_memory_section,
    "ddp_memory": ddp_memory_section,
    "completion": completion_section,
    "large": large_section,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"any of {', '.join(SECTIONS)}")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, two seeds, one repeat: every section")
    options = parser.parse_args()
    for name in options.sections.split(","):
        SECTIONS[name](options.quick, options.repeats)
        print()


if __name__ == "__main__":
    main()
