"""The lab report: ``lab2.md`` and its figures, written from ``results.json`` alone, into a folder of its own.

Every number in the report is read from the results, so ``python scripts/report.py reports/results.json``
rebuilds the same report without retraining. The folder is replaced as a whole, so it is checked (with the whole
lab's log folder) before any training, and a results file that is not a lab's is refused in one line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import errno
import json
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from lab2_lightning.callbacks.figures import confusion_figure, pca_vs_gd_figure, set_margins
from lab2_lightning.lab.figures import accuracy_spread_figure, loss_curves_figure, rank_sweep_figure
from lab2_lightning.utils.atomic import json_text
from lab2_lightning.utils.errors import LabError, exit_on_user_error
from lab2_lightning.utils.folders import (
    PROBE_PREFIX,
    probe_swap,
    recover,
    replace_folder,
    swaps_locked,
    writable_folder,
)
from lab2_lightning.utils.png import png

# The lab's reference values (the course's published solutions), labelled as such wherever they appear.
_GD, _SVD = 15.2817, 15.2288
PUBLISHED: dict[str, Any] = {
    "gd_loss": _GD,
    "svd_loss": _SVD,
    "relative_gap_pct": round(100 * (_GD - _SVD) / _SVD, 4),
    "train": {"acc_per_class": {"Iris-setosa": 1.0, "Iris-versicolor": 0.7273, "Iris-virginica": 1.0}, "acc": 0.90},
    "val": {"acc_per_class": {"Iris-setosa": 0.9375, "Iris-versicolor": 0.7647, "Iris-virginica": 1.0}, "acc": 0.88},
}

# The files of a report. The report replaces its folder as a whole, so --out may hold these (a previous report) and
# nothing else: anything else would be lost with the previous report.
FIGURES = ("fig1_pca_vs_gd", "loss_curves", "accuracy_spread", "rank_sweep", "confusion_train", "confusion_val")
REPORT_FILES = frozenset({"lab2.md", "results.json", *(f"{stem}.png" for stem in FIGURES)})

# What the report reads at the top of results.json.
RESULTS_KEYS = ("published", "factorisation", "rank_sweep", "mlp", "environment", "settings", "wall_time_s", "commands")

# How a full disk is told: the errors where freeing space is the cure.
NO_SPACE = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded"}


def _f(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _spread(s: dict[str, float]) -> tuple[str, str]:
    """``mean ± std`` and ``min – max`` cells."""
    return f"{_f(s['mean'])} ± {_f(s['std'])}", f"{_f(s['min'])} – {_f(s['max'])}"


def make_figures(results: dict[str, Any]) -> dict[str, Figure]:
    """The report's figures by file stem (also their TensorBoard tags)."""
    fact, mlp = results["factorisation"], results["mlp"]
    pca = fact["pca_seed0"]
    figures = {
        "fig1_pca_vs_gd": pca_vs_gd_figure(
            np.asarray(pca["scores"]), np.asarray(pca["U"]), np.asarray(pca["labels"]), pca["class_names"]
        ),
        "loss_curves": loss_curves_figure(fact["curves_seed0"]["train/loss"], fact["svd_loss"], mlp["curves_seed0"]),
        "accuracy_spread": accuracy_spread_figure(
            {split: s["per_seed"] for split, s in mlp["summary"].items()}, mlp["class_names"]
        ),
        "rank_sweep": rank_sweep_figure(
            [r["rank"] for r in results["rank_sweep"]],
            [r["gd_loss"] for r in results["rank_sweep"]],
            [r["svd_loss"] for r in results["rank_sweep"]],
        ),
    }
    angle, residual = max(pca["principal_angles_deg"]), pca["map_residual"]
    figures["fig1_pca_vs_gd"].suptitle(
        f"seed 0: largest principal angle {angle:.4f}°, linear-map residual {residual:.4f}", fontsize="medium"
    )
    set_margins(figures["fig1_pca_vs_gd"], left=0.8, bottom=0.6, top=0.7, wspace=0.3)  # room for the suptitle
    n = results["settings"]["seeds"]
    for split, summary in mlp["summary"].items():
        title = f"{'Training' if split == 'train' else 'Validation'}: confusion summed over {n} seeds"
        figures[f"confusion_{split}"] = confusion_figure(
            np.asarray(summary["confusion_sum"]), mlp["class_names"], title
        )
    return figures


def render_markdown(results: dict[str, Any]) -> str:
    """``lab2.md``: tables of our numbers beside the published ones, the figures, environment and commands."""
    fact, mlp, pub, env = results["factorisation"], results["mlp"], results["published"], results["environment"]
    n = results["settings"]["seeds"]
    s = fact["summary"]
    gd_mean, gd_range = _spread(s["gd_loss"])
    gap_mean, gap_range = _spread(s["relative_gap_pct"])
    angle_mean, angle_range = _spread(s["max_principal_angle_deg"])
    res_mean, res_range = _spread(s["map_residual"])
    pca = fact["pca_seed0"]
    lines = [
        "# Lab 2, reproduced in PyTorch Lightning",
        "",
        f"Each experiment was run with seeds 0–{n - 1} on {env['device']} ({env['device_type']}). Every number "
        "below is read from `results.json` beside this file; columns marked *published* are the lab's reference "
        "values, not ours.",
        "",
        "## Exercise 1: low-rank factorisation by gradient descent",
        "",
        f"### Table 1 (Ex 1.2): reconstruction loss of the mean-centred Iris features, rank {fact['rank']}",
        "",
        f"| quantity | ours, mean ± std over {n} seeds | ours, min – max | published |",
        "|---|---|---|---|",
        f"| GD loss (sum of squared errors) | {gd_mean} | {gd_range} | {_f(pub['gd_loss'])} |",
        f"| truncated-SVD optimum (Eckart–Young) | {_f(fact['svd_loss'])} | | {_f(pub['svd_loss'])} |",
        f"| relative gap of GD to the optimum (%) | {gap_mean} | {gap_range} | {_f(pub['relative_gap_pct'])} |",
        "",
        "### Figure 1 (Ex 1.3): the data on the first two principal axes beside GD's U",
        "",
        "![PCA projection beside GD's U](fig1_pca_vs_gd.png)",
        "",
        "Is U a rotation and scaling of the PCA projection? If span(U) equals the top principal subspace, the "
        "principal angles between them are 0 and a linear map takes U exactly to the PCA scores.",
        "",
        f"| test | seed 0 | mean ± std over {n} seeds | min – max |",
        "|---|---|---|---|",
        f"| largest principal angle (degrees) | {_f(max(pca['principal_angles_deg']))} | {angle_mean} "
        f"| {angle_range} |",
        f"| relative residual of the best linear map | {_f(pca['map_residual'])} | {res_mean} | {res_range} |",
        "",
        "### Rank sweep (seed 0)",
        "",
        "| rank r | GD loss | SVD optimum | GD − optimum |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['rank']} | {_f(r['gd_loss'])} | {_f(r['svd_loss'])} | {_f(r['gap_to_svd'])} |"
        for r in results["rank_sweep"]
    ]
    lines += ["", "![rank sweep](rank_sweep.png)", "", "## Exercise 2: the 4-12-3 MLP", ""]
    lines += [
        "### Table 2 (Ex 2.2): per-class accuracy of the final weights",
        "",
        f"| class | split | rows | ours, mean ± std over {n} seeds | ours, min – max | published |",
        "|---|---|---|---|---|---|",
    ]
    for split, summary in mlp["summary"].items():
        for name in mlp["class_names"]:
            mean, span = _spread(summary["acc_per_class"][name]) if summary["class_counts"][name] else ("n/a", "")
            published = pub.get(split, {}).get("acc_per_class", {}).get(name)
            lines.append(f"| {name} | {split} | {summary['class_counts'][name]} | {mean} | {span} | {_f(published)} |")
        mean, span = _spread(summary["acc"])
        rows = sum(summary["class_counts"].values())
        lines.append(f"| **overall** | {split} | {rows} | {mean} | {span} | {_f(pub.get(split, {}).get('acc'))} |")
    lines += [
        "",
        "![loss curves](loss_curves.png)",
        "",
        "![per-class accuracy over seeds](accuracy_spread.png)",
        "",
        *[f"![confusion matrix, {split}](confusion_{split}.png)" for split in mlp["summary"]],
        "",
        "## Environment",
        "",
        "| python | torch | lightning | torchmetrics | accelerator | device | CPU threads | wall time (s) |",
        "|---|---|---|---|---|---|---|---|",
        f"| {env['python']} | {env['torch']} | {env['lightning']} | {env['torchmetrics']} | {env['accelerator']} "
        f"| {env['device']} | {env['cpu_threads']} | {results['wall_time_s']:.1f} |",
        "",
        "## Reproduce",
        "",
        "```bash",
        *results["commands"],
        "```",
        "",
        f"TensorBoard: `tensorboard --logdir {results['settings']['tensorboard']}`.",
        "",
    ]
    return "\n".join(lines)


DPI = 110


def check_lab_folders(out: Path, log_dir: Path) -> None:
    """The whole lab's ``--out`` and ``--log_dir``, checked before any training, each in one line: logs inside the
    report's folder would go with the previous report, and either folder must be one the run can write in."""
    real_logs = log_dir.resolve()
    if real_logs == out.resolve() or out.resolve() in real_logs.parents:
        raise LabError(
            f"--log_dir {log_dir}: inside --out {out}, which the report replaces as a whole; put the logs elsewhere"
        )
    writable_folder(log_dir, "--log_dir")
    check_report_folder(out)


def check_report_folder(out: Path) -> None:
    """Refuse, in one line, an ``--out`` the report cannot replace as a whole: not a writable folder (it is created
    if missing), the working directory or one above it, a folder that holds anything but a previous report's
    files, or a folder whose parent cannot take the new one. The whole lab calls this before any training; the
    report calls it again just before writing. A crash of an earlier swap is recovered first (see
    :func:`~lab2_lightning.utils.folders.recover`)."""
    real, here = out.resolve(), Path.cwd()
    if real == here or real in here.parents:
        raise LabError(
            f"--out {out}: holds the working directory; the report replaces its folder as a whole, so name a folder "
            "of its own (e.g. reports)"
        )
    try:
        with swaps_locked(real):  # another lab may be swapping its report in right now
            recover(real)
    except OSError as err:
        raise LabError(f"--out {out}: cannot replace this folder: {err.strerror} in {real.parent}") from None
    writable_folder(out, "--out")
    # Not another lab's probe of the same folder, started at the same time: it is gone a moment later.
    entries = [e for e in out.iterdir() if not (report_file(e) or e.name.startswith(PROBE_PREFIX))]
    others = sorted(f"{e.name}/" if e.is_dir() else e.name for e in entries)
    if others:
        listed = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise LabError(
            f"--out {out}: holds files that are not a lab report's ({listed}); the report replaces its folder as a "
            "whole: name a new or empty folder, or move them"
        )
    try:
        probe_swap(out)
    except OSError as err:
        raise LabError(f"--out {out}: cannot replace this folder: {err.strerror} in {real.parent}") from None


def report_file(entry: Path) -> bool:
    return entry.name in REPORT_FILES and entry.is_file() and not entry.is_symlink()


def write_report(results: dict[str, Any], out: Path) -> dict[str, bytes]:
    """Write ``results.json``, the PNG figures and ``lab2.md`` into a new folder and swap it in for ``out`` whole
    (:func:`~lab2_lightning.utils.folders.replace_folder`), so ``out`` holds the previous report or this one,
    never a mix.

    Everything that can fail on bad results (the Markdown, drawing the figures) fails before a file is touched. A
    failure to write (a full disk, ...) is one line, and leaves the previous report as it was. Returns the
    figures' PNG bytes by file stem, so the caller can also send them to TensorBoard without drawing them again.
    """
    markdown = render_markdown(results)
    # Drawn once, for the report's files and for TensorBoard alike.
    images = {stem: png(figure, DPI) for stem, figure in make_figures(results).items()}
    files = {
        **{f"{stem}.png": image for stem, image in images.items()},
        "results.json": json_text(results).encode(),
        "lab2.md": markdown.encode(),
    }
    check_report_folder(out)
    kept = "the previous report is unchanged" if any(out.iterdir()) else "no report was written"
    try:
        replace_folder(out, lambda folder: write_files(folder, files))
    except OSError as err:
        problem = NO_SPACE.get(err.errno, f"cannot write the report ({err.strerror or err})")
        raise LabError(f"{out}: {problem}; {kept}") from None
    return images


def write_files(folder: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (folder / name).write_bytes(data)


def read_results(path: Path) -> dict[str, Any]:
    """A whole lab's ``results.json``, or a one-line :class:`LabError` that names the file and its problem."""
    if not path.exists():
        raise LabError(f"{path}: no such file")
    if not path.is_file():
        raise LabError(f"{path}: not a regular file")
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as err:
        raise LabError(f"{path}: cannot be read ({err.strerror})") from None
    except UnicodeDecodeError:
        raise LabError(f"{path}: not a lab results file (not UTF-8 text)") from None
    if not text.strip():
        raise LabError(f"{path}: the file is empty")

    def no_constant(name: str) -> None:
        raise LabError(f"{path}: not a lab results file ({name} is not a number the lab writes)")

    try:
        results = json.loads(text, parse_constant=no_constant)
    except json.JSONDecodeError as err:
        raise LabError(
            f"{path}: not a lab results file (not JSON: {err.msg} at line {err.lineno}, column {err.colno})"
        ) from None
    except RecursionError:
        raise LabError(f"{path}: not a lab results file (nested too deeply)") from None
    if not isinstance(results, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
        raise LabError(f"{path}: not a lab results file ({kind.get(type(results), 'null')} in JSON, not an object)")
    missing = [key for key in RESULTS_KEYS if key not in results]
    if missing:
        raise LabError(f"{path}: not a lab results file (missing {', '.join(map(repr, missing))})")
    return results


def main(args: list[str] | None = None) -> Path:
    """``python scripts/report.py reports/results.json``: rebuild the report from saved results."""
    parser = argparse.ArgumentParser(
        description="Rebuild the lab report from a saved results.json (no training).", allow_abbrev=False
    )
    parser.add_argument("results", type=Path, help="results.json written by the whole-lab run")
    parser.add_argument("--out", type=Path, help="output directory (default: beside results.json)")
    options = parser.parse_args(args)
    with exit_on_user_error():
        results = read_results(options.results)
        out = options.out or options.results.parent
        try:
            write_report(results, out)
        except KeyError as err:
            raise LabError(f"{options.results}: not a lab results file (missing {err})") from None
        except (TypeError, IndexError, AttributeError, ValueError) as err:
            raise LabError(f"{options.results}: not a lab results file (a value of the wrong kind: {err})") from None
    print(f"report: {out / 'lab2.md'} ({dt.datetime.now():%Y-%m-%d %H:%M})")
    return out / "lab2.md"
