"""Benchmark: Lightning's overhead against the lab's plain loops, large matrices against the memory bandwidth,
time to the SVD optimum, and the whole lab as a process. Prints a table and writes JSON.

    python scripts/benchmark.py --quick            # smaller sizes: about a minute without (d)
    python scripts/benchmark.py                    # the sizes the README reports
    python scripts/benchmark.py --device cuda --size 100000x10000

Every comparison is measured side by side in this one process (medians of --repeats runs after a warm-up,
min and max shown): on a shared machine the ratios are what count, not the absolute times.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback

from lab2_lightning.models.lowrank import low_rank_squared_error, squared_norm
from lab2_lightning.utils.atomic import write_json
from lab2_lightning.utils.machine import cpu_name

if TYPE_CHECKING:
    from lab2_lightning.data.datamodule import IrisDataModule

# The other sections import the project's modules where they use them, so that (b), which needs only the loss
# function, runs whatever state the LightningModules and the CLI are in.

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


def timings(run: Callable[[], float | None], repeats: int) -> dict[str, float]:
    """Median, min and max seconds of ``repeats`` calls after one warm-up; ``run`` may return its own time."""
    run()
    values = []
    for _ in range(repeats):
        start = time.perf_counter()
        own = run()
        values.append(own if own is not None else time.perf_counter() - start)
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------------------------- (a) overhead


def plain_mlp_with_validation(data: IrisDataModule, steps: int, every: int, lr: float = 0.01) -> None:
    """The lab's MLP loop, plus what the Lightning run also does: loss and accuracy on both splits every
    ``every`` steps (the config's ``steps_per_epoch``)."""
    from lab2_lightning.models.reference import mlp_forward

    x, y, xv, yv = data.train_x.float(), data.train_y, data.val_x.float(), data.val_y
    W1 = torch.randn(x.shape[1], 12, requires_grad=True)
    W2 = torch.randn(12, 3, requires_grad=True)
    b1 = torch.tensor(0.0, requires_grad=True)
    b2 = torch.tensor(0.0, requires_grad=True)
    params = (W1, W2, b1, b2)
    for step in range(steps):
        loss = F.cross_entropy(mlp_forward(x, *params), y, reduction="sum")
        loss.backward()
        with torch.no_grad():
            for p in params:
                p -= lr * p.grad
                p.grad.zero_()
        if (step + 1) % every:
            continue
        with torch.no_grad():
            for features, labels in ((x, y), (xv, yv)):
                logits = mlp_forward(features, *params)
                F.cross_entropy(logits, labels, reduction="sum")
                (logits.argmax(1) == labels).float().mean()


class LoopTimer(Callback):
    """The training loop's wall time: from ``on_train_start`` to the end of the last epoch, so every step, every
    validation, every TensorBoard point and every epoch's checkpoint but the last (Lightning runs checkpoint
    callbacks after the others). Not the analysis and figures that ``on_train_end`` adds once, which the plain loops
    do not do: the "whole fit" column has them."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.seconds = time.perf_counter() - self.start


def lightning_seconds(config: str, seeds: int, log_dir: Path) -> tuple[float, float]:
    """The training loop's and the whole ``fit``'s seconds for a packaged config as a user runs it (TensorBoard
    logging of every step, the progress bar, validation and checkpoints as the config sets them), with its model
    holding ``seeds`` members."""
    from lab2_lightning.lab.experiment import build_cli

    cli = build_cli(
        ["--config", config, "--trainer.default_root_dir", str(log_dir), "--trainer.callbacks+=__main__.LoopTimer",
         "--model.init_args.seeds", str(list(range(seeds)))],
        run=False,
    )  # fmt: skip
    start = time.perf_counter()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    fit = time.perf_counter() - start
    return next(c for c in cli.trainer.callbacks if isinstance(c, LoopTimer)).seconds, fit


def bench_overhead(repeats: int) -> list[dict[str, Any]]:
    """(a) one seed, and (a') ten seeds in one batched training, against as many runs of the lab's plain loops.
    Both sides at one CPU thread, which the CLI chooses for Iris (``--threads auto``)."""
    from lab2_lightning.data.datamodule import IrisDataModule
    from lab2_lightning.models.reference import gd_factorise_ad

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows = []
    iris = IrisDataModule(preprocessing="centre")
    lab = IrisDataModule(preprocessing="lab", val_size=50)
    experiments = (
        ("factorisation", "factorise", 1000, lambda: gd_factorise_ad(iris.train_x, 2)),
        ("MLP, validation every 10 steps", "mlp", 100, lambda: plain_mlp_with_validation(lab, 100, 10)),
    )
    with tempfile.TemporaryDirectory() as tmp:
        for seeds in (1, 10):
            for name, config, steps, plain in experiments:
                fits: list[float] = []

                def baseline(plain: Callable[[], object] = plain, seeds: int = seeds) -> None:
                    for seed in range(seeds):
                        torch.manual_seed(seed)
                        plain()

                def loop(config: str = config, seeds: int = seeds, fits: list[float] = fits) -> float:
                    seconds, fit = lightning_seconds(config, seeds, Path(tmp))
                    fits.append(fit)
                    return seconds

                base = timings(baseline, repeats)
                ours = timings(loop, repeats)
                rows.append(
                    {
                        "experiment": f"{name}, {steps} steps",
                        "seeds": seeds,
                        "plain_s": base["median"],
                        "lightning_s": ours["median"],
                        "lightning_s_min_max": [ours["min"], ours["max"]],
                        "plain_ms_per_step": 1e3 * base["median"] / steps,
                        "lightning_ms_per_step": 1e3 * ours["median"] / steps,
                        "ratio": ours["median"] / base["median"],
                        "fit_seconds_with_final_figures": statistics.median(fits[1:]),
                    }
                )
    torch.set_num_threads(threads)  # the Lightning runs chose one thread for Iris; (b) wants the cores back
    return rows


class EmptyStep(pl.LightningModule):
    """Lightning's floor: manual-optimisation steps that do next to nothing, ``steps_per_batch`` per batch."""

    def __init__(self, steps_per_batch: int) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.steps_per_batch = steps_per_batch
        self.w = torch.nn.Parameter(torch.zeros(()))

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        optimizer = self.optimizers()
        for _ in range(self.steps_per_batch):
            self.manual_backward(self.w * batch)  # FullBatch hands over its "batch" as it is, here a 0-d tensor
            optimizer.step()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


def lightning_floor_ms(steps_per_batch: int, steps: int = 1000) -> float:
    """ms per step of :class:`EmptyStep` with no logger, bar or checkpoint: what no LightningModule taking as many
    steps per batch goes below."""
    trainer = pl.Trainer(
        max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False,
    )  # fmt: skip
    start = time.perf_counter()
    from lab2_lightning.data.datamodule import FullBatch

    trainer.fit(EmptyStep(steps_per_batch), train_dataloaders=FullBatch(torch.ones(()), 100 // steps_per_batch))
    return 1e3 * (time.perf_counter() - start) / steps


# ----------------------------------------------------------------------------------------- (b) large matrices

# rank, members (None: 2-D factors), dtype, gradient
LARGE_CASES: list[tuple[int, int | None, torch.dtype, str]] = [
    (rank, None, dtype, gradient)
    for dtype in (torch.float32, torch.float64)
    for gradient in ("closed_form", "autograd")
    for rank in (16, 64)
] + [(16, 10, torch.float32, "closed_form")]


def cpu_seconds() -> tuple[float, float, float]:
    """Wall clock, CPU seconds the whole machine has spent busy and those of this process (Linux; zeros
    elsewhere): over a measurement, the difference says how much of the machine other processes took."""
    wall = time.perf_counter()
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        busy = sum(fields[:3]) + sum(fields[5:8])  # user, nice, system, irq, softirq, steal
        own = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        return wall, busy / ticks, (int(own[11]) + int(own[12])) / ticks
    except (OSError, ValueError, IndexError):
        return wall, 0.0, 0.0


def others_cpu_share(before: tuple[float, float, float], after: tuple[float, float, float]) -> float:
    """The share of all cores that other processes kept busy between two :func:`cpu_seconds` readings."""
    wall, busy, own = (b - a for a, b in zip(before, after, strict=True))
    return max(0.0, (busy - own) / (wall * (os.cpu_count() or 1))) if wall > 0 else 0.0


def rss_bytes(field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process, from /proc (Linux); 0 elsewhere."""
    status = Path("/proc/self/status")
    if not status.exists():
        return 0
    for line in status.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def reset_peak_rss() -> None:
    """Reset VmHWM to the current RSS (Linux: writing 5 to clear_refs), so the peak is that of what follows."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def copy_bandwidth(A: torch.Tensor, repeats: int) -> float:
    """Bytes per second of ``out.copy_(A)``, counting the bytes read and written."""
    out = torch.empty_like(A)

    def copy() -> float:
        synchronize(A.device)
        start = time.perf_counter()
        out.copy_(A)
        synchronize(A.device)
        return time.perf_counter() - start

    return 2 * A.numel() * A.element_size() / timings(copy, repeats)["median"]


def large_matrix(size: tuple[int, int], device: torch.device) -> torch.Tensor:
    """A centred rank-16-plus-noise float32 matrix, made on the device (seconds for 10⁹ entries on a GPU, where
    building it on the host took longer than the benchmark); the values do not change what a step costs."""
    m, n = size
    generator = torch.Generator(device).manual_seed(0)
    X = torch.randn(m, 16, generator=generator, device=device)
    Y = torch.randn(n, 16, generator=generator, device=device)
    A = torch.randn(m, n, generator=generator, device=device).mul_(0.1).addmm_(X, Y.T, alpha=0.25)
    return A.sub_(A.mean(0))


def gd_step(A: torch.Tensor, rank: int, members: int | None, gradient: str) -> Callable[[], None]:
    """One gradient step of the factorisation as the LightningModule takes it, without Lightning (whose cost per
    step is section (a)'s): the loss, its backward and the lab's update ``p -= lr * p.grad`` (PlainGradientStep's
    arithmetic). ``closed_form`` gets ‖A‖² computed once, as the module does."""
    torch.manual_seed(0)
    m, n = A.shape
    batch = () if members is None else (members,)
    U = torch.rand(*batch, m, rank, dtype=A.dtype, device=A.device).requires_grad_()
    V = torch.rand(*batch, n, rank, dtype=A.dtype, device=A.device).requires_grad_()
    a_sq_norm = squared_norm(A)
    lr = 1e-12  # the step size does not change a step's cost

    def step() -> None:
        if gradient == "closed_form":
            loss = low_rank_squared_error(U, V, A, a_sq_norm).sum()
        else:
            loss = F.mse_loss(U @ V.mT, A, reduction="sum")
        loss.backward()
        with torch.no_grad():
            for p in (U, V):
                p -= lr * p.grad
                p.grad = None

    return step


def time_step(step: Callable[[], None], device: torch.device, repeats: int) -> tuple[dict[str, float], int]:
    """Seconds per step (median, min, max of ``repeats`` after a warm-up) and the peak bytes the steps add."""

    def timed() -> float:
        synchronize(device)
        start = time.perf_counter()
        step()
        synchronize(device)
        return time.perf_counter() - start

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        reset_peak_rss()
        base = rss_bytes("VmRSS")
    seconds = timings(timed, repeats)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else rss_bytes("VmHWM")
    return seconds, max(0, peak - base)


def bench_large(size: tuple[int, int], device: torch.device, repeats: int) -> dict[str, Any]:
    m, n = size
    base = large_matrix(size, device)
    rows = []
    bandwidth = {}
    for dtype in (torch.float32, torch.float64):
        A = base if dtype == base.dtype else base.to(dtype)
        bandwidth[dtype] = copy_bandwidth(A, repeats)
        array = A.numel() * A.element_size()
        one_pass = array / bandwidth[dtype]  # read A once: the least any step needs
        for rank, members, _, gradient in (case for case in LARGE_CASES if case[2] == dtype):
            before = cpu_seconds()
            seconds, peak = time_step(gd_step(A, rank, members, gradient), device, repeats)
            others = others_cpu_share(before, cpu_seconds())
            step = seconds["median"]
            flops = (4 if gradient == "closed_form" else 6) * m * n * rank * (members or 1)
            rows.append(
                {
                    "rank": rank,
                    "members": members or 1,
                    "dtype": str(dtype).removeprefix("torch."),
                    "gradient": gradient,
                    "ms_per_step": 1e3 * step,
                    "ms_min_max": [1e3 * seconds["min"], 1e3 * seconds["max"]],
                    "steps_per_s": 1 / step,
                    "gflops": flops / step / 1e9,
                    "one_pass_ms": 1e3 * one_pass,
                    "fraction_of_one_pass": one_pass / step,
                    "five_pass_ms": 5e3 * one_pass,
                    "fraction_of_five_pass": 5 * one_pass / step,
                    "peak_extra_arrays": peak / array,
                    "others_cpu_share": others,
                }
            )
        del A
    del base
    return {
        "size": [m, n],
        "device": device.type,
        "device_name": device_name(device),
        "copy_gb_per_s": {str(k).removeprefix("torch."): v / 1e9 for k, v in bandwidth.items()},
        "byte_model": "one pass: bytes(A) at the measured copy bandwidth, the least any step needs (the closed "
        "form reads A only through A V and Aᵀ U: once per step in cache-sized blocks on a CPU, in two GEMMs on a "
        "GPU); five passes: an unfused step that writes R = UVᵀ - A and reads it for the loss, 2RV and 2RᵀU. A "
        "step is the loss, its backward and p -= lr * p.grad on U and V, without Lightning (section (a) has its "
        "cost per step). "
        "GFLOP/s counts 4 m n r per member for the closed form, 6 m n r for autograd.",
        "rows": rows,
    }


# ------------------------------------------------------------------------------------ (c) time to the optimum


class StopNearOptimum(Callback):
    def __init__(self, target: float) -> None:
        self.target = target

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, *args: Any) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if float(loss) <= self.target:
            trainer.should_stop = True


def bench_time_to_optimum(size: tuple[int, int], device: torch.device, max_steps: int) -> dict[str, Any]:
    from lab2_lightning.data.datamodule import IrisDataModule
    from lab2_lightning.data.synthetic import SyntheticMatrix
    from lab2_lightning.models.factorisation import LowRankFactorisation
    from lab2_lightning.models.linalg import svd_optimum_loss

    m, n = size
    rank = 10
    # The project's own DataModule serves the synthetic matrix, mean-centred, as it does in a user's run.
    data = IrisDataModule(synthetic=SyntheticMatrix(rows=m, cols=n, rank=rank, noise=0.1, seed=1), steps_per_epoch=100)
    A = data.train_x.to(device)
    optimum = svd_optimum_loss(A, rank)
    rows = []

    synchronize(device)
    start = time.perf_counter()
    S = torch.linalg.svdvals(A)
    float((S[rank:] ** 2).sum())
    rows.append({"method": "torch.linalg.svd (exact)", "seconds": time.perf_counter() - start, "gap": 0.0})

    synchronize(device)
    start = time.perf_counter()
    U_, S_, V_ = torch.svd_lowrank(A, q=rank + 10, niter=4)
    approx = float(F.mse_loss((U_[:, :rank] * S_[:rank]) @ V_[:, :rank].T, A, reduction="sum"))
    rows.append({"method": "torch.svd_lowrank", "seconds": time.perf_counter() - start, "gap": approx / optimum - 1})

    torch.manual_seed(0)
    model = LowRankFactorisation(n_rows=m, n_features=n, rank=rank, lr="auto", gradient="closed_form", seeds=[0])
    trainer = pl.Trainer(
        accelerator=device.type, devices=1, precision="64-true", max_steps=max_steps, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[StopNearOptimum(1.01 * optimum)],
    )  # fmt: skip
    start = time.perf_counter()
    trainer.fit(model, datamodule=data)
    seconds = time.perf_counter() - start
    final = float(model.final_loss[0])
    rows.append(
        {
            "method": f"GD, lr auto = {model.lr_used:.3g} ({trainer.global_step} steps)",
            "seconds": seconds,
            "gap": final / optimum - 1,
            "reached": final <= 1.01 * optimum,
        }
    )
    return {"size": [m, n], "rank": rank, "optimum": optimum, "rows": rows}


# --------------------------------------------------------------------------------------- (d) whole process

PLAIN_LAB = """
import torch, torch.nn.functional as F
from lab2_lightning.data.datamodule import IrisDataModule
from lab2_lightning.models.reference import gd_factorise_ad, sgd_mlp, mlp_forward
torch.set_num_threads(1)
A = IrisDataModule(preprocessing="centre").train_x
for seed, rank in [(seed, 2) for seed in range(10)] + [(0, rank) for rank in (1, 2, 3, 4)]:
    torch.manual_seed(seed)
    U, V = gd_factorise_ad(A, rank)
    float(F.mse_loss(U @ V.T, A, reduction="sum")), float((torch.linalg.svdvals(A)[rank:] ** 2).sum())
data = IrisDataModule(preprocessing="lab", val_size=50)
for seed in range(10):
    torch.manual_seed(seed)
    w = sgd_mlp(data.train_x.float(), data.train_y)
    for x, y in ((data.train_x, data.train_y), (data.val_x, data.val_y)):
        (mlp_forward(x.float(), *w.values()).argmax(1) == y).float().mean()
"""


# Runs a script and records its own peak RSS (VmHWM) at exit. rusage's maxrss would also count the memory of this
# benchmark process, which the child inherits between fork and exec.
PEAK_WRAPPER = """
import atexit, runpy, sys
from pathlib import Path
report, script = sys.argv[1], sys.argv[2]
def peak():
    hwm = [l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM:")]
    Path(report).write_text(hwm[0].split()[1] if hwm else "0")
atexit.register(peak)
sys.argv = sys.argv[2:]
runpy.run_path(script, run_name="__main__")
"""


def run_process(script: Path, args: list[str], cwd: Path) -> dict[str, float]:
    """Wall time and peak resident memory of ``python script args`` in a child process."""
    report = cwd / "peak_kb"
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PEAK_WRAPPER, str(report), str(script), *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{script} exited with {done.returncode}: {done.stderr[-500:]}")
    return {"seconds": seconds, "peak_rss_mb": int(report.read_text()) / 1024}


def bench_process() -> list[dict[str, Any]]:
    """(d) the default whole lab as a process (10 seeds, the rank sweep, the report), on a quiet machine and beside
    one CPU-bound process of the same Python, against a plain script of the same trainings with no outputs."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        lab = ["--accelerator", "cpu", "--out", f"{tmp}/reports", "--log_dir", f"{tmp}/logs"]
        quiet = run_process(ROOT / "scripts" / "train.py", lab, Path(tmp))
        rows.append({"process": "lab2 (the whole lab: report, figures, TensorBoard, checkpoints)", **quiet})
        burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            loaded = run_process(ROOT / "scripts" / "train.py", lab, Path(tmp))
        finally:
            burner.kill()
            burner.wait()
        rows.append(
            {
                "process": "the same, beside one CPU-bound process",
                **loaded,
                "of_quiet": loaded["seconds"] / quiet["seconds"],
            }
        )
        plain_script = Path(tmp) / "plain_lab.py"
        plain_script.write_text(PLAIN_LAB)
        rows.append(
            {
                "process": "plain script: the same 24 trainings with the lab's loops, no outputs",
                **run_process(plain_script, [], Path(tmp)),
            }
        )
    return rows


# ------------------------------------------------------------------------------------------------- the table


def print_overhead(rows: list[dict[str, Any]], device: str, floor_ms: dict[str, float]) -> None:
    print(f"\n## (a) and (a') Lightning against the lab's plain loops ({device}, one thread)\n")
    print(
        "| experiment | seeds | plain loops s | Lightning s (min–max) | ratio | plain ms/step | Lightning ms/step "
        "| whole fit s, with final numbers |\n|---|---|---|---|---|---|---|---|"
    )
    for r in rows:
        lo, hi = r["lightning_s_min_max"]
        print(
            f"| {r['experiment']} | {r['seeds']} | {r['plain_s']:.3f} | {r['lightning_s']:.3f} ({lo:.3f}–{hi:.3f}) "
            f"| {r['ratio']:.2f}× | {r['plain_ms_per_step']:.3f} | {r['lightning_ms_per_step']:.3f} "
            f"| {r['fit_seconds_with_final_figures']:.2f} |"
        )
    print(
        f"\nLightning's floor, empty manual-optimisation steps with no logger: {floor_ms['1']:.3f} ms per step at one "
        f"step per batch, {floor_ms['10']:.3f} ms at ten (the packaged configs' data.steps_per_batch)."
    )


def print_large(large: dict[str, Any]) -> None:
    m, n = large["size"]
    copy = ", ".join(f"{k} {v:.1f} GB/s" for k, v in large["copy_gb_per_s"].items())
    print(f"\n## (b) {m}×{n} on {large['device_name']}: copy bandwidth {copy}\n")
    print(
        "| rank | members | dtype | gradient | ms/step (min–max) | steps/s | GFLOP/s | 1-pass bound ms | of it "
        "| of the 5-pass bound | peak extra m×n arrays | other processes' CPU |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    for r in large["rows"]:
        lo, hi = r["ms_min_max"]
        print(
            f"| {r['rank']} | {r['members']} | {r['dtype']} | {r['gradient']} | {r['ms_per_step']:.2f} "
            f"({lo:.2f}–{hi:.2f}) | {r['steps_per_s']:.1f} | {r['gflops']:.1f} | {r['one_pass_ms']:.2f} "
            f"| {r['fraction_of_one_pass']:.0%} | {r['fraction_of_five_pass']:.0%} | {r['peak_extra_arrays']:.2f} "
            f"| {r['others_cpu_share']:.0%} |"
        )


def print_optimum(t: dict[str, Any]) -> None:
    print(f"\n## (c) time to within 1% of the SVD optimum, {t['size'][0]}×{t['size'][1]}, rank {t['rank']}\n")
    print("| method | seconds | gap to the optimum |\n|---|---|---|")
    for r in t["rows"]:
        print(f"| {r['method']} | {r['seconds']:.3f} | {r['gap']:.2e} |")


def print_process(rows: list[dict[str, Any]]) -> None:
    print("\n## (d) the default whole lab as a process\n")
    print("| process | wall s | of the quiet run | peak RSS MB |\n|---|---|---|---|")
    for r in rows:
        share = f"{r['of_quiet']:.2f}×" if "of_quiet" in r else ""
        print(f"| {r['process']} | {r['seconds']:.2f} | {share} | {r['peak_rss_mb']:.0f} |")


def print_table(results: dict[str, Any]) -> None:
    """The tables of the sections that ran, in Markdown."""
    if results["overhead"]:
        print_overhead(results["overhead"], results["machine"]["device"], results["lightning_floor_ms"])
    for large in results["large"]:
        print_large(large)
    if results["time_to_optimum"].get("rows"):
        print_optimum(results["time_to_optimum"])
    if results["process"]:
        print_process(results["process"])


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()}, {torch.get_num_threads()} threads"


def parse_size(text: str) -> tuple[int, int]:
    m, n = text.lower().split("x")
    return int(m), int(n)


def main(args: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: about a minute without (d)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats after one warm-up (default 5)")
    parser.add_argument(
        "--device", default="cpu", help="device for (b) and (c): cpu or cuda; (b) takes a list, e.g. cuda,cpu"
    )
    parser.add_argument("--size", type=parse_size, help="m x n for (b), e.g. 20000x2000 (the default)")
    parser.add_argument("--json", type=Path, default=Path("benchmark.json"), help="where to write the results")
    parser.add_argument("--skip", default="", help="comma-separated sections to skip, of a,b,c,d")
    options = parser.parse_args(args)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    devices = [torch.device(name) for name in options.device.split(",")]
    device = devices[0]
    skip = set(options.skip.split(",")) - {""}
    results: dict[str, Any] = {
        "machine": {
            "device": device_name(device),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "quick": options.quick,
        "repeats": options.repeats,
    }
    size = options.size or ((4000, 1000) if options.quick else (20000, 2000))
    if "a" not in skip:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        lightning_floor_ms(1)  # warm-up
        results["lightning_floor_ms"] = {  # string keys, as in the JSON
            str(per_batch): statistics.median(lightning_floor_ms(per_batch) for _ in range(3)) for per_batch in (1, 10)
        }
        torch.set_num_threads(threads)
    results["overhead"] = bench_overhead(options.repeats) if "a" not in skip else []
    results["large"] = []
    if "b" not in skip:
        results["large"] = [bench_large(size, each, options.repeats) for each in devices]
    optimum_size = (2000, 200) if options.quick else (5000, 500)
    results["time_to_optimum"] = (
        bench_time_to_optimum(optimum_size, device, max_steps=20000) if "c" not in skip else {"size": optimum_size}
    )
    results["process"] = bench_process() if "d" not in skip else []
    write_json(options.json, results)
    print_table(results)
    print(f"\nJSON: {options.json}")
    return results


if __name__ == "__main__":
    main()
