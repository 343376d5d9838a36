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

from lab2_lightning.callbacks.yardsticks import EXACT
from lab2_lightning.errors import LabError
from lab2_lightning.plots import (
    Curve,
    accuracy_spread_figure,
    completion_figure,
    confusion_figure,
    loss_curves_figure,
    pca_vs_gd_figure,
    rank_sweep_figure,
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


UNIT = "cm"  # the Iris features', so the centred data's, its PCA scores' and every RMSE's (squared errors: cm²)
SPLITS = {"train": "training", "val": "validation"}


def _f(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _spread(s: dict[str, float]) -> tuple[str, str]:
    """``mean ± std`` and ``min – max`` cells."""
    return f"{_f(s['mean'])} ± {_f(s['std'])}", f"{_f(s['min'])} – {_f(s['max'])}"


def _loss_label(results: dict[str, Any]) -> str:
    """Exercise 1's loss and its unit, for an axis: one label per row, and the rank sweep runs to full rank, the
    number of columns (Iris has fewer columns than rows)."""
    rows, cols = len(results["factorisation"]["pca_seed0"]["labels"]), max(r["rank"] for r in results["rank_sweep"])
    return f"squared error ({UNIT}²),\nsummed over {rows} rows × {cols} columns"


def _zero_optima(sweep: list[dict[str, Any]]) -> list[bool]:
    """Which ranks' optimum is zero to rounding (full rank), where a relative gap means nothing: the yardsticks'
    test, on the scale of the sweep's largest optimum (at most ``||A||²``, so if anything stricter)."""
    scale = max(r["svd_loss"] for r in sweep)
    return [r["svd_loss"] <= EXACT * scale for r in sweep]


def _per_row_curves(mlp: dict[str, Any]) -> dict[str, Curve]:
    """Exercise 2's seed-0 curves as the mean cross-entropy per row: the lab's losses are sums over the split's
    rows (100 training, 50 validation), which makes the two curves incomparable."""
    curves = {}
    for key, curve in mlp["curves_seed0"].items():
        split = "val" if key.startswith("validation") else "train"
        rows = sum(mlp["summary"][split]["class_counts"].values())
        when = "after the step" if split == "val" else "in each step"
        curves[f"{SPLITS[split]} ({rows} rows, {when})"] = {
            "step": curve["step"],
            "value": np.asarray(curve["value"]) / rows,
        }
    return curves


def make_figures(results: dict[str, Any]) -> dict[str, Figure]:
    """The report's figures by file stem (also their TensorBoard tags), in their order in ``lab2.md``."""
    fact, mlp, sweep = results["factorisation"], results["mlp"], results["rank_sweep"]
    pca = fact["pca_seed0"]
    angle, residual = max(pca["principal_angles_deg"]), pca["map_residual"]
    figures = {
        "fig1_pca_vs_gd": pca_vs_gd_figure(
            np.asarray(pca["scores"]),
            np.asarray(pca["U"]),
            np.asarray(pca["labels"]),
            pca["class_names"],
            f"seed 0: largest principal angle {angle:.4f}°, linear-map residual {residual:.4f}",
            UNIT,
        ),
        "rank_sweep": rank_sweep_figure(
            [r["rank"] for r in sweep],
            [r["gd_loss"] for r in sweep],
            [r["svd_loss"] for r in sweep],
            _zero_optima(sweep),
            _loss_label(results),
        ),
    }
    if "completion" in results:
        figures["completion_rmse"] = completion_figure(results["completion"]["fractions"], UNIT)
    figures["loss_curves"] = loss_curves_figure(
        fact["curve_seed0"], fact["svd_loss"], _loss_label(results), _per_row_curves(mlp)
    )
    figures["accuracy_spread"] = accuracy_spread_figure(
        {SPLITS[split]: s["per_seed"] for split, s in mlp["summary"].items()},
        {SPLITS[split]: results["published"].get(split, {}).get("acc_per_class", {}) for split in mlp["summary"]},
        mlp["class_names"],
    )
    n = results["settings"]["seeds"]
    for split, summary in mlp["summary"].items():
        title = f"{SPLITS[split].capitalize()}: confusion summed over {n} seeds"
        figures[f"confusion_{split}"] = confusion_figure(
            np.asarray(summary["confusion_sum"]), mlp["class_names"], title
        )
    return figures


class Numbering:
    """Tables and figures numbered in order of appearance: an optional section renumbers the ones after it."""

    def __init__(self) -> None:
        self.tables = self.figures = 0

    def table(self, caption: str) -> str:
        """A table's caption, the line above it."""
        self.tables += 1
        return f"**Table {self.tables}.** {caption}"

    def figure(self, stem: str, alt: str, caption: str) -> list[str]:
        """A figure's lines: the image, then its caption."""
        self.figures += 1
        return [f"![{alt}]({stem}.png)", "", f"**Figure {self.figures}.** {caption}", ""]


def _exercise_1(results: dict[str, Any], number: Numbering) -> list[str]:
    fact, pub = results["factorisation"], results["published"]
    n = results["settings"]["seeds"]
    s = fact["summary"]
    gd_mean, gd_range = _spread(s["gd_loss"])
    gap_mean, gap_range = _spread(s["relative_gap_pct"])
    angle_mean, angle_range = _spread(s["max_principal_angle_deg"])
    res_mean, res_range = _spread(s["map_residual"])
    pca = fact["pca_seed0"]
    lines = [
        "## Exercise 1: low-rank factorisation by gradient descent",
        "",
        "### Ex 1.2: the reconstruction loss",
        "",
        number.table(
            f"Reconstruction loss of the mean-centred Iris features (in {UNIT}) at rank {fact['rank']}: the sum of "
            f"the squared errors over every entry, in {UNIT}²."
        ),
        "",
        f"| quantity | ours, mean ± std over {n} seeds | ours, min – max | published |",
        "|---|---|---|---|",
        f"| GD loss (sum of squared errors) | {gd_mean} | {gd_range} | {_f(pub['gd_loss'])} |",
        f"| truncated-SVD optimum (Eckart–Young) | {_f(fact['svd_loss'])} | | {_f(pub['svd_loss'])} |",
        f"| relative gap of GD to the optimum (%) | {gap_mean} | {gap_range} | {_f(pub['relative_gap_pct'])} |",
        "",
        "### Ex 1.3: is U a rotation and scaling of the PCA projection?",
        "",
        *number.figure(
            "fig1_pca_vs_gd",
            "PCA projection beside GD's U",
            f"Left: every row of the centred data on the first two principal axes (its PCA scores, in {UNIT}). "
            "Right: the same rows' coordinates in GD's U (seed 0; U has no unit, as U Vᵀ carries the data's). "
            "Colours are the classes. If U is a rotation and scaling of the PCA projection, the right panel is the "
            "left one under a linear map: the same clusters in the same arrangement, turned and stretched.",
        ),
        "If span(U) equals the top principal subspace, the principal angles between them are 0 and a linear map "
        "takes U exactly to the PCA scores.",
        "",
        number.table(
            "The two tests of that question: the largest principal angle between span(U) and the top principal "
            "subspace, and the relative residual of the best linear map from U to the PCA scores (both 0 if exact)."
        ),
        "",
        f"| test | seed 0 | mean ± std over {n} seeds | min – max |",
        "|---|---|---|---|",
        f"| largest principal angle (degrees) | {_f(max(pca['principal_angles_deg']))} | {angle_mean} "
        f"| {angle_range} |",
        f"| relative residual of the best linear map | {_f(pca['map_residual'])} | {res_mean} | {res_range} |",
        "",
        "### Rank sweep (seed 0)",
        "",
        number.table(
            f"GD's final loss at every rank beside the optimum, in {UNIT}². At full rank the optimum is 0 to "
            "rounding and is printed as exact: a relative gap would divide by it, so the gap is given in absolute "
            "terms only (it is GD's whole loss)."
        ),
        "",
        "| rank r | GD loss | SVD optimum | GD − optimum | relative gap (%) |",
        "|---|---|---|---|---|",
    ]
    for r, exact in zip(results["rank_sweep"], _zero_optima(results["rank_sweep"]), strict=True):
        gap = r["gd_loss"] - r["svd_loss"]
        optimum, relative = ("0 (exact)", "n/a: optimum 0 (exact)") if exact else (
            _f(r["svd_loss"]), f"{100 * gap / r['svd_loss']:.2e}"
        )  # fmt: skip
        lines.append(f"| {r['rank']} | {_f(r['gd_loss'])} | {optimum} | {gap:.2e} | {relative} |")
    lines += [
        "",
        *number.figure(
            "rank_sweep",
            "rank sweep",
            f"Left: the final summed squared error ({UNIT}², log scale) of GD (hollow circles) and of the truncated "
            "SVD, the optimum (small squares), at each rank: a square inside its circle means GD reached the "
            "optimum. At full rank the optimum is 0 (exact), drawn as a triangle on the axis's floor. Right: GD's "
            "excess over the optimum at each rank (log scale); at full rank it is GD's whole loss. A gap near "
            "10⁻¹⁶ of the loss itself is float64 rounding.",
        ),
    ]
    return lines


def _completion(completion: dict[str, Any], number: Numbering) -> list[str]:
    """The section of Exercise 1 with missing entries (the lab writes it only when it runs that experiment)."""
    c = completion
    entries = c["rows"] * c["cols"]
    lines = [
        "## Exercise 1 with missing entries",
        "",
        f"The rank-{c['rank']} factorisation is fitted by gradient descent ({c['steps']} steps) to the observed "
        f"entries of the {c['rows']} × {c['cols']} Iris matrix only, and scored by its RMSE on the hidden ones, in "
        f"{UNIT}. Each missing fraction hides a seeded set of entries (mask seed {c['mask_seed']}), the same set "
        f"for every one of the {c['seeds']} seeds: their spread is over gradient descent's random starts alone. "
        "Column means and iterative SVD imputation (at the same rank) are deterministic given the mask: one "
        "number each. Centring uses each column's observed mean.",
        "",
        number.table(
            f"RMSE on the hidden entries ({UNIT}): gradient descent over {c['seeds']} seeds beside the column "
            "means and iterative SVD imputation."
        ),
        "",
        f"| missing fraction | hidden entries (of {entries}) | GD, mean ± std over {c['seeds']} seeds "
        "| GD, min – max | column means | iterative SVD imputation |",
        "|---|---|---|---|---|---|",
    ]
    for f in c["fractions"]:
        mean, span = _spread(f["gd_rmse"])
        lines.append(
            f"| {100 * f['fraction']:g} % | {f['hidden_entries']} | {mean} | {span} | {_f(f['column_mean_rmse'])} "
            f"| {_f(f['hard_impute_rmse'])} |"
        )
    lines += [
        "",
        *number.figure(
            "completion_rmse",
            "held-out RMSE against the missing fraction",
            f"RMSE on the hidden entries ({UNIT}; lower is better) against the fraction of the entries hidden. "
            "Gradient descent: the mean over seeds with error bars of ± one standard deviation, each seed a faint "
            "dot to its left. Column means and iterative SVD imputation: one value per fraction. The methods are "
            "drawn slightly apart along x so that none hides another.",
        ),
    ]
    return lines


def _exercise_2(results: dict[str, Any], number: Numbering) -> list[str]:
    mlp, pub = results["mlp"], results["published"]
    n = results["settings"]["seeds"]
    rows = {split: sum(summary["class_counts"].values()) for split, summary in mlp["summary"].items()}
    lines = [
        "## Exercise 2: the 4-12-3 MLP",
        "",
        "### Ex 2.2: per-class accuracy of the final weights",
        "",
        "The published accuracies come from another split: the course's solution drew its own shuffle of the rows "
        "into training and validation, so its classes hold other rows, in other numbers. They are a reference, "
        "not a target.",
        "",
        number.table(f"Per-class accuracy (the fraction of the class's rows classified correctly) over {n} seeds."),
        "",
        f"| class | split | rows | ours, mean ± std over {n} seeds | ours, min – max | published (another split) |",
        "|---|---|---|---|---|---|",
    ]
    for split, summary in mlp["summary"].items():
        for name in mlp["class_names"]:
            mean, span = _spread(summary["acc_per_class"][name]) if summary["class_counts"][name] else ("n/a", "")
            published = pub.get(split, {}).get("acc_per_class", {}).get(name)
            lines.append(f"| {name} | {split} | {summary['class_counts'][name]} | {mean} | {span} | {_f(published)} |")
        mean, span = _spread(summary["acc"])
        lines.append(
            f"| **overall** | {split} | {rows[split]} | {mean} | {span} | {_f(pub.get(split, {}).get('acc'))} |"
        )
    split_rows = ", ".join(f"{rows[split]} {SPLITS[split]}" for split in mlp["summary"])
    lines += [
        "",
        *number.figure(
            "loss_curves",
            "loss curves",
            f"Seed 0, at every step. Left: Exercise 1's loss above the optimum ({UNIT}², log scale); a straight line "
            "is linear convergence. Right: Exercise 2's cross-entropy per row (nats, log scale): the lab's summed "
            f"loss divided by the split's rows ({split_rows}), the training loss in each step, the validation loss "
            "after it.",
        ),
        *number.figure(
            "accuracy_spread",
            "per-class accuracy over seeds",
            f"Per-class accuracy of each of the {n} seeds' final weights (dots), their mean (bar) and the published "
            "value (star), one panel per split. The published run used another split, so its star is a reference, "
            "not a target.",
        ),
    ]
    for split in mlp["summary"]:
        lines += number.figure(
            f"confusion_{split}",
            f"confusion matrix, {split}",
            f"The {SPLITS[split]} split's confusion matrix, summed over {n} seeds: rows are the true class, columns "
            f"the predicted one, and each cell counts rows ({rows[split]} per seed); the diagonal is correct.",
        )
    return lines


def render_markdown(results: dict[str, Any]) -> str:
    """``lab2.md``: tables of our numbers beside the published ones, the figures, environment and commands."""
    env, n = results["environment"], results["settings"]["seeds"]
    number = Numbering()
    lines = [
        "# Lab 2, reproduced in PyTorch Lightning",
        "",
        f"Each experiment was run with seeds 0–{n - 1} on {env['device']} ({env['device_type']}). Every number "
        "below is read from `results.json` beside this file. *mean ± std* is the mean over the seeds and their "
        "sample standard deviation (n − 1 in the denominator; 0 for one seed); *min – max* is their range. Columns "
        "marked *published* are the lab's reference values (the course's solution), not ours.",
        "",
        *_exercise_1(results, number),
        *(_completion(results["completion"], number) if "completion" in results else []),
        *_exercise_2(results, number),
        "## Environment",
        "",
        number.table("The software and the machine of this run."),
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
        "TensorBoard, for the runs' curves and these figures:",
        "",
        "```bash",
        shlex.join(["tensorboard", "--logdir", results["settings"]["tensorboard"]]),
        "```",
        "",
    ]
    return "\n".join(lines)


DPI = 110


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
