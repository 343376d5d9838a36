"""The whole lab in one command: both exercises over several seeds and a rank sweep, then the report.

Each exercise is one ``lab2 fit`` of all its members at once, through the same CLI and packaged configs as a
single run: Exercise 1's seeds at rank 2 with seed 0 at every other rank, then Exercise 2's seeds. A lab that is
stopped continues when the same command runs again: a finished training is kept, a stopped one resumes from its
last checkpoint, through the same run identity check as any resume.
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch
from jsonargparse import ArgumentParser
from jsonargparse.typing import PositiveInt

from lab2_lightning.configs import path as config_path
from lab2_lightning.data import TableDataModule
from lab2_lightning.errors import LabError
from lab2_lightning.lab.report import PUBLISHED, write_report
from lab2_lightning.utils.atomic import write_json
from lab2_lightning.utils.run_folder import VERSION, claim_new, hold

HIDDEN_FRACTIONS = (0.1, 0.2, 0.4)  # "Exercise 1 with missing entries": Iris with these fractions hidden


def run_lab(
    seeds: PositiveInt = 10,
    accelerator: str = "auto",
    out: Path = Path("reports"),
    log_dir: Path = Path("lightning_logs"),
    factorise_steps: PositiveInt | None = None,
    mlp_steps: PositiveInt | None = None,
    resume: bool = True,
) -> dict[str, Any]:
    """Run the whole lab and write its report: Exercise 1, Exercise 1 with 10%, 20% and 40% of its entries hidden,
    and Exercise 2.

    Args:
        seeds: how many seeds (0, 1, ...) each exercise is repeated with.
        accelerator: Lightning's accelerator: cpu, gpu, auto, ...
        out: the report's folder: lab2.md, its figures and results.json.
        log_dir: TensorBoard's root; the lab's runs go to log_dir/lab/version_N.
        factorise_steps: Exercise 1's gradient steps (default: the config's 1000).
        mlp_steps: Exercise 2's gradient steps (default: the config's 100).
        resume: continue the newest stopped lab of the same settings; false: always start a new one.
    """
    out, log_dir = Path(out), Path(log_dir)
    if out.exists() and not out.is_dir():
        raise LabError(f"--out {out}: is a file; name a folder for the report")
    out.mkdir(parents=True, exist_ok=True)  # a path it cannot be is refused now, not after the training
    settings = {"seeds": seeds, "accelerator": accelerator, "factorise_steps": factorise_steps, "mlp_steps": mlp_steps}
    started = time.perf_counter()
    lab_dir = open_lab(log_dir / "lab", settings, resume)
    for name in ("lightning.pytorch", "lightning.fabric"):  # no banners per training
        logging.getLogger(name).setLevel(logging.WARNING)
    iris = TableDataModule()
    ranks = [r for r in range(1, min(iris.n_rows, iris.n_features) + 1) if r != 2]
    trainings = {
        "factorise": [
            "--model.seeds", json.dumps([*range(seeds), *[0] * len(ranks)]),
            "--model.rank", json.dumps([2] * seeds + ranks),
            *(["--trainer.max_steps", str(factorise_steps)] if factorise_steps else []),
        ],
        "mlp": [
            "--model.seeds", json.dumps(list(range(seeds))),
            *(["--trainer.max_steps", str(mlp_steps)] if mlp_steps else []),
        ],
        **{
            f"complete_{round(100 * fraction)}": [
                "--model.seeds", json.dumps(list(range(seeds))), "--data.holdout", str(fraction),
                *(["--trainer.max_steps", str(factorise_steps)] if factorise_steps else []),
            ]
            for fraction in HIDDEN_FRACTIONS
        },
    }  # fmt: skip
    # Each training is named after its packaged config (and its fraction of hidden entries).
    try:
        done = {name: train(lab_dir, name, name.split("_")[0], accelerator, args) for name, args in trainings.items()}
    except BaseException:
        if not any(entry.is_dir() for entry in lab_dir.iterdir()):  # no training has a checkpoint to continue
            shutil.rmtree(lab_dir, ignore_errors=True)
        raise
    results = summarise(done["factorise"], done["mlp"], seeds, iris)
    results["completion"] = summarise_completion([done[f"complete_{round(100 * f)}"] for f in HIDDEN_FRACTIONS], iris)
    results["environment"] = environment(accelerator)
    results["wall_time_s"] = time.perf_counter() - started
    results["settings"] = {**settings, "tensorboard": str(lab_dir)}
    results["commands"] = reproduce_commands(settings, out, log_dir)
    write_report(results, out, tensorboard=lab_dir / "summary")
    write_json(lab_dir / "results.json", results)  # marks the lab finished
    print(f"report: {out / 'lab2.md'} ({results['wall_time_s']:.1f} s)")
    return results


def open_lab(root: Path, settings: dict[str, Any], resume: bool) -> Path:
    """The newest stopped lab of these settings that no other process is continuing, or a new one."""
    if resume and root.is_dir():
        stopped = [f for f in root.iterdir() if VERSION.fullmatch(f.name) and not (f / "results.json").exists()]
        for folder in sorted(stopped, key=lambda f: int(f.name.split("_")[1]), reverse=True):
            try:
                same = json.loads((folder / "lab.json").read_text()) == settings
            except (OSError, ValueError):
                same = False
            if same and hold(folder):
                print(f"continuing the stopped lab in {folder}", file=sys.stderr)
                return folder
    folder = claim_new(root)
    hold(folder)
    write_json(folder / "lab.json", settings)
    return folder


def train(lab_dir: Path, name: str, config: str, accelerator: str, args: list[str]) -> dict[str, Any]:
    """One of the lab's trainings: kept if finished, continued from its last checkpoint if stopped."""
    from lab2_lightning.cli import LabCLI  # the CLI imports this module's package: imported when needed

    folder = lab_dir / name
    if (folder / "results.json").is_file():
        return json.loads((folder / "results.json").read_text())
    last = folder / "checkpoints" / "last.ckpt"
    if not last.is_file() and folder.exists():  # killed before its first checkpoint: nothing to keep
        shutil.rmtree(folder)
    logger = {
        "class_path": "lightning.pytorch.loggers.CSVLogger",
        "init_args": {"save_dir": str(lab_dir), "name": "", "version": name},
    }
    cli = LabCLI(
        [
            "fit", "--config", str(config_path(config)), "--trainer.accelerator", accelerator,
            "--trainer.logger", json.dumps(logger), "--trainer.enable_model_summary", "false", *args,
            *(["--ckpt_path", str(last)] if last.is_file() else []),
        ]
    )  # fmt: skip
    return cli.results


def stats(values: list[float]) -> dict[str, float]:
    """Mean, sample standard deviation (n - 1; 0 for one value), min and max."""
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def summarise(factorise: dict[str, Any], mlp: dict[str, Any], seeds: int, iris: TableDataModule) -> dict[str, Any]:
    """Every number and curve the report shows, from the two trainings' results."""
    runs = factorise["runs"][:seeds]
    svd_loss = runs[0]["svd_loss"]
    curve = factorise["curves"]["train"][0]
    factorisation = {
        "rank": runs[0]["rank"],
        "svd_loss": svd_loss,
        "runs": runs,
        "summary": {
            "gd_loss": stats([r["gd_loss"] for r in runs]),
            "relative_gap_pct": stats([100 * r["relative_gap"] for r in runs]),
            "max_principal_angle_deg": stats([max(r["principal_angles_deg"]) for r in runs]),
            "map_residual": stats([r["map_residual"] for r in runs]),
        },
        "curve_seed0": {"step": list(range(1, len(curve) + 1)), "value": curve},
        "pca_seed0": {
            "scores": factorise["figure"]["pca"],
            "U": factorise["figure"]["U"],
            "labels": iris.train_y.tolist(),
            "class_names": iris.class_names,
            "principal_angles_deg": runs[0]["principal_angles_deg"],
            "map_residual": runs[0]["map_residual"],
        },
    }
    sweep = sorted([runs[0], *factorise["runs"][seeds:]], key=lambda run: run["rank"])
    rank_sweep = [{key: run[key] for key in ("rank", "gd_loss", "svd_loss")} for run in sweep]

    names = mlp["runs"][0]["class_names"]
    summary = {}
    for split in ("train", "val"):
        per_class = {name: [r[split]["acc_per_class"][name] for r in mlp["runs"]] for name in names}
        summary[split] = {
            "acc": stats([r[split]["acc"] for r in mlp["runs"]]),
            "loss": stats([r[split]["loss"] for r in mlp["runs"]]),
            "acc_per_class": {
                n: stats([v for v in vs if v is not None])
                for n, vs in per_class.items()
                if any(v is not None for v in vs)
            },
            "per_seed": per_class,
            "class_counts": mlp["runs"][0][split]["class_counts"],
            "confusion_sum": torch.tensor([r[split]["confusion"] for r in mlp["runs"]]).sum(0).tolist(),
        }
    train_curve = mlp["curves"]["train"][0]
    val_points = [(step, points["cross_entropy/val"][0]) for step, points in mlp["curves"]["val"]]
    curves = {
        "training (summed over 100 rows, in each step)": {
            "step": list(range(1, len(train_curve) + 1)),
            "value": train_curve,
        },
        "validation (summed over 50 rows, after the step)": {
            "step": [s for s, _ in val_points],
            "value": [v for _, v in val_points],
        },
    }
    return {
        "published": PUBLISHED,
        "factorisation": factorisation,
        "rank_sweep": rank_sweep,
        "mlp": {"class_names": names, "runs": mlp["runs"], "summary": summary, "curves_seed0": curves},
    }


def summarise_completion(trainings: list[dict[str, Any]], iris: TableDataModule) -> dict[str, Any]:
    """The held-out RMSE of each fraction's training beside its references (one number each: they do not depend on
    the seed)."""
    fractions = []
    for training in trainings:
        runs, data = training["runs"], training["settings"]["data"]["init_args"]
        gd = [run["hidden_rmse"] for run in runs]
        fractions.append(
            {
                "fraction": data["holdout"],
                "hidden_entries": round(data["holdout"] * iris.n_rows * iris.n_features),
                "gd_rmse": stats(gd),
                "gd_rmse_per_seed": gd,
                "column_mean_rmse": runs[0]["column_mean_rmse"],
                "hard_impute_rmse": runs[0]["hard_impute_rmse"],
            }
        )
    first = trainings[0]
    return {
        "rank": first["runs"][0]["rank"],
        "steps": first["runs"][0]["steps"],
        "seeds": len(first["runs"]),
        "rows": iris.n_rows,
        "cols": iris.n_features,
        "mask_seed": first["settings"]["data"]["init_args"]["split_seed"],
        "fractions": fractions,
    }


def cpu_name() -> str:
    """The CPU's model name (Linux), else what the platform module knows."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def environment(accelerator: str) -> dict[str, Any]:
    """Versions and the device, for the report."""
    gpu = accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available()
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": version("lightning"),
        "torchmetrics": version("torchmetrics"),
        "device": torch.cuda.get_device_name() if gpu else cpu_name(),
        "device_type": "cuda" if gpu else "cpu",
        "cpu_threads": torch.get_num_threads(),
    }


def reproduce_commands(settings: dict[str, Any], out: Path, log_dir: Path) -> list[list[str]]:
    """The commands that rebuild this report: the lab, then the report alone from its results.json."""
    run = ["lab2", "lab"]
    defaults = {"seeds": 10, "accelerator": "auto", "factorise_steps": None, "mlp_steps": None}
    for key, default in defaults.items():
        if settings[key] != default:
            run += [f"--{key}", str(settings[key])]
    if out != Path("reports"):
        run += ["--out", str(out)]
    if log_dir != Path("lightning_logs"):
        run += ["--log_dir", str(log_dir)]
    return [run, ["lab2", "report", str(out / "results.json")]]


def main(args: list[str]) -> dict[str, Any]:
    """``lab2 [lab] [options]``."""
    parser = ArgumentParser(
        prog="lab2 [lab]",
        allow_abbrev=False,
        exit_on_error=False,
        description="Run the whole of Lab 2 and write its report; this is the command when none is given. The "
        "others: fit, validate, test, predict (one experiment: 'lab2 fit --help') and report.",
    )
    parser.add_function_arguments(run_lab, as_group=False)
    return run_lab(**parser.parse_args(args).as_dict())
