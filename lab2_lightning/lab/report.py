"""The lab report: ``lab2.md`` and its figures, written from ``results.json`` alone, so ``lab2 report
reports/results.json`` rebuilds the same report without training."""

from __future__ import annotations

import io
import json
import shlex
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from jsonargparse import ArgumentParser
from matplotlib.figure import Figure

from lab2_lightning.errors import LabError
from lab2_lightning.plots import (
    accuracy_spread_figure,
    confusion_figure,
    loss_curves_figure,
    pca_vs_gd_figure,
    rank_sweep_figure,
    set_margins,
)
from lab2_lightning.utils.atomic import write_bytes, write_json, write_text

# The lab's reference values (the course's published solutions), labelled as such wherever they appear.
_GD, _SVD = 15.2817, 15.2288
PUBLISHED: dict[str, Any] = {
    "gd_loss": _GD,
    "svd_loss": _SVD,
    "relative_gap_pct": round(100 * (_GD - _SVD) / _SVD, 4),
    "train": {"acc_per_class": {"Iris-setosa": 1.0, "Iris-versicolor": 0.7273, "Iris-virginica": 1.0}, "acc": 0.90},
    "val": {"acc_per_class": {"Iris-setosa": 0.9375, "Iris-versicolor": 0.7647, "Iris-virginica": 1.0}, "acc": 0.88},
}

# What the report reads at the top of results.json.
RESULTS_KEYS = ("published", "factorisation", "rank_sweep", "mlp", "environment", "settings", "wall_time_s", "commands")


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
        "loss_curves": loss_curves_figure(fact["curve_seed0"], fact["svd_loss"], mlp["curves_seed0"]),
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
        f"| {r['rank']} | {_f(r['gd_loss'])} | {_f(r['svd_loss'])} | {_f(r['gd_loss'] - r['svd_loss'])} |"
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
        "| python | torch | lightning | torchmetrics | device | CPU threads | wall time (s) |",
        "|---|---|---|---|---|---|---|",
        f"| {env['python']} | {env['torch']} | {env['lightning']} | {env['torchmetrics']} "
        f"| {env['device']} | {env['cpu_threads']} | {results['wall_time_s']:.1f} |",
        "",
        "## Reproduce",
        "",
        "```bash",
        *(shlex.join(command) for command in results["commands"]),
        "```",
        "",
        f"TensorBoard: `tensorboard --logdir {results['settings']['tensorboard']}`.",
        "",
    ]
    return "\n".join(lines)


DPI = 110
# What the report reads at the top of results.json.
RESULTS_KEYS = ("published", "factorisation", "rank_sweep", "mlp", "environment", "settings", "wall_time_s", "commands")


def write_report(results: dict[str, Any], out: Path, tensorboard: Path | None = None) -> None:
    """``results.json``, the PNG figures and ``lab2.md`` (last, so it never names a figure not yet written), each
    written whole; the figures also to TensorBoard under ``tensorboard``, if given."""
    markdown = render_markdown(results)  # everything that can fail on bad results fails before a file is touched
    images = {}
    for stem, figure in make_figures(results).items():
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=DPI)
        plt.close(figure)
        images[stem] = buffer.getvalue()
    if out.exists() and not out.is_dir():
        raise LabError(f"--out {out}: is a file; name a folder for the report")
    write_json(out / "results.json", results)
    for stem, image in images.items():
        write_bytes(out / f"{stem}.png", image)
    write_text(out / "lab2.md", markdown)
    if tensorboard is not None:
        import matplotlib.image
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(tensorboard) as writer:
            for stem, image in images.items():
                writer.add_image(
                    f"report/{stem}", matplotlib.image.imread(io.BytesIO(image))[..., :3], dataformats="HWC"
                )


def read_results(path: Path) -> dict[str, Any]:
    """A whole lab's ``results.json``, or one line naming the file and its problem."""
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:  # JSON or UTF-8
        raise LabError(f"{path}: not a lab results file ({error})") from None
    missing = [key for key in RESULTS_KEYS if key not in results] if isinstance(results, dict) else ["an object"]
    if missing:
        raise LabError(f"{path}: not a lab results file (missing {', '.join(missing)})")
    return results


def main(args: list[str]) -> Path:
    """``lab2 report RESULTS [--out FOLDER]``: the report again, from a whole lab's results.json."""
    parser = ArgumentParser(
        prog="lab2 report",
        exit_on_error=False,
        description="Rebuild the lab report from a saved results.json (no training).",
    )
    parser.add_argument("results", type=Path, help="results.json written by the whole lab")
    parser.add_argument(
        "--out", type=Path | None, default=None, help="the report's folder (default: beside results.json)"
    )
    options = parser.parse_args(args)
    results = read_results(options.results)
    out = options.out or options.results.parent
    try:
        write_report(results, out)
    except (KeyError, TypeError, IndexError, ValueError) as error:
        raise LabError(f"{options.results}: not a lab results file (a missing or wrong value: {error!r})") from None
    print(f"report: {out / 'lab2.md'}")
    return out / "lab2.md"
