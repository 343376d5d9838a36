"""The whole lab in one command: both exercises over several seeds, a rank sweep, then the report.

"Repeat this a few times and report what you observe" (the lab sheet): each exercise is one training of all its
members at once (the modules' member dimension), through the same CLI and configs as a single run: Exercise 1's
seeds and its rank sweep (seed 0 at every rank), Exercise 2's seeds. The report gives the spread over seeds beside
the published numbers. A lab that is stopped continues where it stopped when the same command runs again
(:mod:`~lab2_lightning.lab.lab_folder`).
"""

from __future__ import annotations

import json
import logging
import platform
import statistics
import sys
import time
from collections.abc import Iterable
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import yaml
from lightning.pytorch.callbacks import Callback
from tqdm.auto import tqdm

from lab2_lightning.configs import path as config_path
from lab2_lightning.data.datamodule import IrisDataModule
from lab2_lightning.lab.devices import check_accelerator
from lab2_lightning.lab.experiment import Accelerator, LabCLI, build_cli, write_results
from lab2_lightning.lab.lab_folder import mark_finished, open_lab_folder
from lab2_lightning.lab.report import PUBLISHED, check_lab_folders, write_report
from lab2_lightning.models.checkpoints import load_checkpoint
from lab2_lightning.models.linalg import pca_scores
from lab2_lightning.utils.errors import LabError
from lab2_lightning.utils.event_file import EventFile
from lab2_lightning.utils.machine import cpu_name
from lab2_lightning.utils.signals import Stopped
from lab2_lightning.utils.threads import Threads, check_threads


def stats(values: list[float]) -> dict[str, float]:
    """Mean, sample standard deviation (0 for one value), min and max."""
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


@contextmanager
def quiet_lightning():
    """Silence Lightning's per-run banners (GPU available, seed set, ...) while the sweep's bar runs."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


class AdvanceBar(Callback):
    """Moves the whole lab's progress bar by the steps of each batch of each of its trainings (from the step it
    resumed at, if it did)."""

    def __init__(self, bar: tqdm) -> None:
        self.bar = bar
        self.step = 0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.bar.update(trainer.global_step)
        self.step = trainer.global_step

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: object) -> None:
        self.bar.update(trainer.global_step - self.step)  # a batch can hold several steps
        self.step = trainer.global_step


_YARDSTICKS = "lab2_lightning.callbacks.EckartYoungComparison"
# Each training's callbacks, in place of its config's: the yardsticks, and one figure of its own for TensorBoard,
# seed 0's PCA figure at card size (the report draws its figures once and sends them to TensorBoard too).
LAB_CALLBACKS = {"factorise": [{"class_path": _YARDSTICKS}], "mlp": []}
TRAININGS = tuple(LAB_CALLBACKS)


def build_training(
    config: Path, log_dir: Path, name: str, accelerator: str, threads: Threads, overrides: list[str]
) -> LabCLI:
    """One of the lab's trainings (all its members at once), logged to ``log_dir/name``, built but not run.

    The config's callbacks are replaced by the training's :data:`LAB_CALLBACKS`. A continued lab writes into the
    training's own checkpoint folder: ``last.ckpt`` is overwritten there, never versioned beside a stale one.
    """
    logger = {
        "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
        "init_args": {"save_dir": str(log_dir), "name": "", "version": name},
    }
    return build_cli(
        [
            "--config", str(config), "--accelerator", accelerator, "--threads", str(threads),
            "--trainer.logger", json.dumps(logger), "--trainer.callbacks", json.dumps(LAB_CALLBACKS[name]),
            "--progress_bar.enabled", "false", "--checkpoint.enable_version_counter", "false", *overrides,
        ],
        run=False,
    )  # fmt: skip


def environment(cli: LabCLI) -> dict[str, Any]:
    """Versions and the device the runs used, for the report."""
    root = cli.trainer.strategy.root_device
    device = torch.cuda.get_device_name(root) if root.type == "cuda" else cpu_name()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "lightning": version("lightning"),
        "torchmetrics": version("torchmetrics"),
        "accelerator": type(cli.trainer.accelerator).__name__,
        "device_type": root.type,
        "device": device,
        "cpu_threads": torch.get_num_threads(),
    }


def run_lab(
    seeds: int = 10,
    accelerator: Accelerator = "auto",
    out: Path = Path("reports"),
    log_dir: Path = Path("lightning_logs"),
    factorise_epochs: int | None = None,
    mlp_epochs: int | None = None,
    threads: Threads = "auto",
    resume: bool = True,
) -> dict[str, Any]:
    """Run the whole lab and write the report.

    Args:
        seeds: how many seeds (0, 1, ...) each experiment is repeated with.
        accelerator: cpu, gpu, auto, ...
        out: where ``lab2.md``, its figures and ``results.json`` go.
        log_dir: TensorBoard root; this run's logs go to ``log_dir/lab/version_N``.
        factorise_epochs: override the factorisation's epochs, i.e. full-batch steps (default: the config's 1000).
        mlp_epochs: override the MLP's epochs, i.e. full-batch steps (default: the config's 100).
        threads: CPU threads: a number, or auto (one for Iris-sized data, where a second thread only spins).
        resume: continue the newest lab of these same settings that was stopped (its finished trainings are kept,
            the interrupted one goes on from its last checkpoint); false: always start a new one.
    """
    if seeds < 1:
        raise LabError(f"--seeds must be at least 1, got {seeds}")
    check_accelerator(accelerator)
    check_threads(threads)
    configs = {name: config_path(name) for name in ("factorise", "mlp")}  # the packaged ones: no checkout needed
    for name, value in (("--factorise_epochs", factorise_epochs), ("--mlp_epochs", mlp_epochs)):
        if value is not None and value < 1:
            raise LabError(f"{name} must be at least 1, got {value}")
    check_lab_folders(Path(out), Path(log_dir))  # last: it creates them
    settings = {
        "seeds": seeds,
        "accelerator": accelerator,
        "factorise_epochs": factorise_epochs,
        "mlp_epochs": mlp_epochs,
        "threads": threads,
    }
    fact_seeds, fact_ranks = factorisation_members(configs["factorise"], seeds)

    def members(seeds: list[int], epochs: int | None) -> list[str]:
        steps = ["--trainer.max_steps", str(epochs)] if epochs is not None else []
        return ["--model.init_args.seeds", json.dumps(seeds), *steps]

    started = time.perf_counter()
    folder = open_lab_folder(Path(log_dir) / "lab", settings, resume)
    lab_dir = folder.path
    try:
        if folder.resumed:
            print(f"continuing the stopped lab in {lab_dir}", file=sys.stderr)
        with quiet_lightning():
            clis = {
                "factorise": build_training(configs["factorise"], lab_dir, "factorise", accelerator, threads,
                                            [*members(fact_seeds, factorise_epochs),
                                             "--model.init_args.rank", json.dumps(fact_ranks)]),
                "mlp": build_training(configs["mlp"], lab_dir, "mlp", accelerator, threads,
                                      members(list(range(seeds)), mlp_epochs)),
            }  # fmt: skip
            total = sum(cli.trainer.max_steps for cli in clis.values())
            with tqdm(total=total, desc="lab", unit="step", file=sys.stderr, dynamic_ncols=True) as bar:
                results_of = {}
                for name, cli in clis.items():
                    bar.set_postfix_str(name)
                    results_of[name] = train(cli, lab_dir / name, bar)
        wall = time.perf_counter() - started

        results = summarise(results_of, clis, seeds)
        results["environment"] = environment(clis["factorise"])
        results["wall_time_s"] = wall
        results["resumed"] = folder.resumed
        results["settings"] = {**settings, "tensorboard": str(lab_dir)}
        results["commands"] = reproduce_commands(
            seeds, accelerator, factorise_epochs, mlp_epochs, Path(out), Path(log_dir)
        )
        images = write_report(results, Path(out))
        log_figures(images, lab_dir / "summary")
        mark_finished(lab_dir, results)
    except Stopped as stop:
        stop.kept = kept(lab_dir, TRAININGS, resume)
        raise
    finally:
        folder.release()
    return results


def factorisation_members(config: Path, seeds: int) -> tuple[list[int], list[int]]:
    """Exercise 1's members in the lab, one training: seeds 0.. at the config's rank, then seed 0 at every other
    rank up to the data's, zero-padded to the largest (the padding leaves each member's numbers as they are)."""
    settings = yaml.safe_load(config.read_text())
    rank = settings["model"]["init_args"]["rank"]
    data = IrisDataModule(**settings.get("data", {}))
    others = [r for r in range(1, min(data.n_rows, data.n_features) + 1) if r != rank]
    return [*range(seeds), *[0] * len(others)], [rank] * seeds + others


def train(cli: LabCLI, folder: Path, bar: tqdm) -> dict[str, Any]:
    """One of the lab's trainings, logged to ``folder``; kept as it is if an earlier run of the lab finished it
    (its module restored from the last checkpoint, for the report's curves and figures), continued from its last
    checkpoint if it was stopped."""
    finished, last = folder / "results.json", folder / "checkpoints" / "last.ckpt"
    if finished.is_file() and last.is_file():
        checkpoint = load_checkpoint(last)
        cli.model.on_load_checkpoint(checkpoint)
        cli.model.load_state_dict(checkpoint["state_dict"])
        bar.update(cli.trainer.max_steps)
        return json.loads(finished.read_text())
    resume_from = last if last.is_file() and checkpoint_step(last) < cli.trainer.max_steps else None
    cli.trainer.callbacks.append(AdvanceBar(bar))
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=resume_from)
    return write_results(cli)


def checkpoint_step(path: Path) -> int:
    """The step a checkpoint was saved at (its tensors mapped, not read)."""
    return int(load_checkpoint(path, mmap=True)["global_step"])


def kept(lab_dir: Path, names: Iterable[str], resume: bool) -> str:
    """What a stopped lab leaves in ``lab_dir``, and how to continue it (``resume``: whether the same command
    would)."""
    done = []
    for name in names:
        folder = lab_dir / name
        if (folder / "results.json").is_file():
            done.append(f"{name} finished")
        elif (folder / "checkpoints" / "last.ckpt").is_file():
            done.append(f"{name} checkpointed at step {checkpoint_step(folder / 'checkpoints' / 'last.ckpt')}")
    state = ", ".join(done) or "no checkpoint yet"
    again = "the same command again" if resume else "it again without --resume false"
    return f"kept {lab_dir}: {state}; run {again} to continue"


def summarise(results_of: dict[str, dict[str, Any]], clis: dict[str, LabCLI], seeds: int) -> dict[str, Any]:
    """Every number and curve the report shows, from the trainings' results and modules (the factorisation's first
    ``seeds`` members are the seeds at the lab's rank, the others seed 0 at the other ranks)."""
    fact_cli, mlp_cli = clis["factorise"], clis["mlp"]
    factorise = results_of["factorise"]["runs"][:seeds]
    data = fact_cli.datamodule
    A = data.train_x.to(torch.float64)
    U = fact_cli.model.factors(0)[0].cpu().to(torch.float64)
    svd_loss = factorise[0]["svd_loss"]
    factorisation = {
        "rank": factorise[0]["rank"],
        "svd_loss": svd_loss,
        "runs": factorise,
        "summary": {
            "gd_loss": stats([r["gd_loss"] for r in factorise]),
            "gap_to_svd": stats([r["gd_loss"] - svd_loss for r in factorise]),
            "relative_gap_pct": stats([100 * r["relative_gap"] for r in factorise]),
            "max_principal_angle_deg": stats([max(r["principal_angles_deg"]) for r in factorise]),
            "map_residual": stats([r["map_residual"] for r in factorise]),
        },
        "curves_seed0": {"train/loss": fact_cli.model.curve("train/loss")},
        "pca_seed0": {
            "scores": pca_scores(A, min(2, U.shape[1])).tolist(),
            "U": U.tolist(),
            "labels": data.train_y.tolist(),
            "class_names": data.class_names,
            "principal_angles_deg": factorise[0]["principal_angles_deg"],
            "map_residual": factorise[0]["map_residual"],
        },
    }
    sweep = sorted([factorise[0], *results_of["factorise"]["runs"][seeds:]], key=lambda run: run["rank"])
    rank_sweep = [
        {
            "rank": run["rank"],
            "gd_loss": run["gd_loss"],
            "svd_loss": run["svd_loss"],
            "gap_to_svd": run["gd_loss"] - run["svd_loss"],
        }
        for run in sweep
    ]

    mlp_runs = results_of["mlp"]["runs"]
    names = mlp_runs[0]["class_names"]
    mlp: dict[str, Any] = {"class_names": names, "runs": mlp_runs, "summary": {}}
    for split in ("train", "val"):
        if split not in mlp_runs[0]:
            continue
        per_class = {name: [r[split]["acc_per_class"][name] for r in mlp_runs] for name in names}
        mlp["summary"][split] = {
            "acc": stats([r[split]["acc"] for r in mlp_runs]),
            "loss": stats([r[split]["loss"] for r in mlp_runs]),
            "acc_per_class": {name: stats([v for v in vs if v is not None]) for name, vs in per_class.items()},
            "per_seed": per_class,
            "class_counts": mlp_runs[0][split]["class_counts"],
            "confusion_sum": torch.tensor([r[split]["confusion"] for r in mlp_runs]).sum(0).tolist(),
        }
    mlp["curves_seed0"] = {tag: mlp_cli.model.curve(tag) for tag in ("train/loss", "val/loss")}
    return {"published": PUBLISHED, "factorisation": factorisation, "rank_sweep": rank_sweep, "mlp": mlp}


def reproduce_commands(
    seeds: int, accelerator: str, factorise_epochs: int | None, mlp_epochs: int | None, out: Path, log_dir: Path
) -> list[str]:
    """The commands that rebuild this report: the run itself, then the report alone from its results.json."""
    run = "lab2 lab"
    for flag, value, default in (
        ("--accelerator", accelerator, "auto"),
        ("--seeds", seeds, 10),
        ("--factorise_epochs", factorise_epochs, None),
        ("--mlp_epochs", mlp_epochs, None),
        ("--out", str(out), "reports"),
        ("--log_dir", str(log_dir), "lightning_logs"),
    ):
        if value != default:
            run += f" {flag} {value}"
    return [run, f"lab2 report {out / 'results.json'}"]


def log_figures(images: dict[str, bytes], log_dir: Path) -> None:
    """Send the report's figures to TensorBoard too, under ``lab/version_N/summary``: the PNG bytes of the report's
    files themselves, as image summaries, rather than the figures drawn a second time."""
    events = EventFile(log_dir)
    try:
        for tag, image in images.items():
            events.image(f"summary/{tag}", image, step=0)  # "summary/": a section of its own
    finally:
        events.close()
