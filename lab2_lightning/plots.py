"""Every figure of the project, in one place: the report's, which TensorBoard shows too.

Every axis says what it measures and in which unit, and every legend sits in a margin of its own below the panels,
so that it never hides a point.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

LEGEND_HEIGHT = 0.3  # inches: one row of a legend below the panels, in small type
_SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def set_margins(
    fig: Figure, left: float, bottom: float, right: float = 0.15, top: float = 0.4, wspace: float = 0.2
) -> None:
    """Place the axes with fixed margins, in inches (``wspace``: the gap between panels, in axes widths).

    For figures whose sizes, fonts and labels are fixed: ``tight_layout`` draws the whole figure once more only to
    measure its text, which made a third of the report's time. Figures labelled with the data's class names keep
    ``tight_layout``.
    """
    width, height = fig.get_size_inches()
    fig.subplots_adjust(
        left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height, wspace=wspace
    )


def _legend_below(fig: Figure, ncol: int) -> None:
    """One legend for the whole figure, in the bottom margin (leave ``LEGEND_HEIGHT`` per row there): never over
    data, and no search for an empty corner (``loc="best"`` tries every point)."""
    entries = {}  # by label: a label shared by several artists or panels is listed once
    for ax in fig.axes:
        handles, labels = ax.get_legend_handles_labels()
        entries.update(zip(labels, handles, strict=True))
    fig.legend(entries.values(), entries.keys(), loc="lower center", ncol=ncol, fontsize="small", frameon=False)


def _log_axis(ax: Axes, subs: Sequence[float] = (1.0,)) -> None:
    """A log y axis with ticks at ``subs`` times the powers of ten and no minor ticks, labelled in plain text: "10⁻⁵",
    or "0.2" between the powers (matplotlib's default labels are mathtext, parsed anew for every label: slow)."""

    def label(value: float, _position: int) -> str:
        if len(subs) > 1:
            return f"{value:g}"
        return "10" + str(round(np.log10(value))).translate(_SUPERSCRIPTS)

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=subs))
    ax.yaxis.set_major_formatter(FuncFormatter(label))
    ax.yaxis.set_minor_locator(NullLocator())


def _log_floor(values: Sequence[float]) -> float:
    """A decade below the smallest positive value: where a log axis shows a zero (or a rounding error below it)."""
    return 10.0 ** (np.floor(np.log10(min(v for v in values if v > 0))) - 1)


def _scatter_by_class(ax: Axes, points: np.ndarray, labels: np.ndarray, class_names: Sequence[str]) -> None:
    y = points[:, 1] if points.shape[1] > 1 else np.zeros(len(points))
    if not class_names:
        ax.scatter(points[:, 0], y, s=12)
        return
    for k, name in enumerate(class_names):
        chosen = labels == k
        ax.scatter(points[chosen, 0], y[chosen], s=12, label=name)


def pca_vs_gd_figure(
    scores: np.ndarray, U: np.ndarray, labels: np.ndarray, class_names: Sequence[str], title: str, unit: str
) -> Figure:
    """Exercise 1.3: the data on the first two principal axes beside the rows of GD's U, coloured by class."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(7, 3.9))
    _scatter_by_class(left, scores, labels, class_names)
    left.set(title="Data on the first two principal axes", xlabel=f"PC 1 score ({unit})", ylabel=f"PC 2 score ({unit})")
    _scatter_by_class(right, U, labels, class_names)
    # U Vᵀ carries the data's unit; how its scale splits between U and V is arbitrary.
    right.set(title="Rows of U (gradient descent)", xlabel="U[:, 0] (no unit)", ylabel="U[:, 1] (no unit)")
    fig.suptitle(title, fontsize="medium")
    _legend_below(fig, ncol=len(class_names))
    set_margins(fig, left=0.8, bottom=0.6 + LEGEND_HEIGHT, top=0.7, wspace=0.3)
    return fig


def confusion_figure(matrix: np.ndarray, class_names: Sequence[str], title: str) -> Figure:
    """A confusion matrix with counts in the cells (rows: true class, columns: predicted class)."""
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    ax.imshow(matrix, cmap="Blues")
    ticks = range(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=30, ha="right")
    ax.set_yticks(ticks, class_names)
    for (i, j), count in np.ndenumerate(matrix):
        colour = "white" if count > matrix.max() / 2 else "black"
        ax.text(j, i, str(int(count)), ha="center", va="center", color=colour)
    ax.set(title=title, xlabel="predicted class", ylabel="true class")
    fig.tight_layout()  # the class names come from the data: their room is measured, not fixed
    return fig


Curve = dict[str, Sequence[float]]  # {"step": [...], "value": [...]}, one member's points


def loss_curves_figure(gd_curve: Curve, svd_loss: float, loss_label: str, mlp_curves: dict[str, Curve]) -> Figure:
    """Exercise 1's GD loss above the SVD optimum, and Exercise 2's training and validation loss per row, per step.

    ``mlp_curves``: per-row (mean) cross-entropy by legend label; a label starting "validation" is drawn with
    markers, as it has a point every few steps only.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    left.plot(gd_curve["step"], np.asarray(gd_curve["value"]) - svd_loss)
    _log_axis(left)
    left.set(
        title="Exercise 1 (seed 0): GD's loss above the optimum",
        xlabel="step (lab epoch)",
        ylabel=f"GD loss − SVD optimum:\n{loss_label}",
    )
    for label, curve in mlp_curves.items():
        right.plot(curve["step"], curve["value"], "o-" if label.startswith("validation") else "-", ms=3, label=label)
    _log_axis(right, subs=(1.0, 2.0, 5.0))
    right.set(
        title="Exercise 2 (seed 0): cross-entropy per row",
        xlabel="step (lab epoch)",
        ylabel="cross-entropy (nats),\nmean over the split's rows",
    )
    _legend_below(fig, ncol=len(mlp_curves))
    set_margins(fig, left=1.0, bottom=0.6 + LEGEND_HEIGHT, wspace=0.3)
    return fig


def accuracy_spread_figure(
    per_seed: dict[str, dict[str, Sequence[float | None]]],
    published: dict[str, dict[str, float]],
    class_names: Sequence[str],
) -> Figure:
    """Per-class accuracy of every seed, their mean and the published value, one panel per split: shows how much
    the random start matters, and where the published run falls among ours.

    ``per_seed`` and ``published`` are keyed by the panel's title, then by class (``None``: the class has no rows).
    """
    fig, axes = plt.subplots(1, len(per_seed), figsize=(5 * len(per_seed), 4.4), squeeze=False)
    for ax, (split, by_class) in zip(axes[0], per_seed.items(), strict=True):
        for k, name in enumerate(class_names):
            values = [v for v in by_class[name] if v is not None]
            jitter = np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else np.zeros(len(values))
            ax.scatter(k + jitter, values, s=18, alpha=0.6, color="C0", zorder=3, label="one seed")
            if values:
                ax.hlines(np.mean(values), k - 0.22, k + 0.22, color="black", lw=2, label="mean over seeds")
            if name in published.get(split, {}):
                ax.scatter(
                    k + 0.3, published[split][name], marker="*", s=110, color="C3", label="published (another split)"
                )
        ax.set_xticks(range(len(class_names)), class_names, rotation=15)
        ax.set(
            title=f"{split}: per-class accuracy over seeds",
            xlim=(-0.5, len(class_names) - 0.5),
            ylim=(-0.03, 1.05),
            xlabel="class",
            ylabel="accuracy (fraction of the class's rows)",
        )
    # The class names come from the data: their room is measured, not fixed; the legend's row is kept free.
    fig.tight_layout(rect=(0, LEGEND_HEIGHT / fig.get_size_inches()[1], 1, 1))
    _legend_below(fig, ncol=3)
    return fig


def rank_sweep_figure(
    ranks: Sequence[int],
    gd_losses: Sequence[float],
    svd_losses: Sequence[float],
    exact: Sequence[bool],
    loss_label: str,
) -> Figure:
    """GD's final loss beside the SVD optimum for every rank, and GD's gap to it, each on a log axis.

    ``exact``: the ranks whose optimum is zero to rounding (full rank). A log axis cannot show 0: such an optimum is
    a triangle on the axis's floor, named. Hollow circles around small squares keep both methods visible where they
    coincide; a gap at or below 0 (rounding) is a hollow triangle on the gap axis's floor.
    """
    ranks, gd, svd = np.asarray(ranks), np.asarray(gd_losses), np.asarray(svd_losses)
    exact = np.asarray(exact, dtype=bool)
    fig, (losses, gaps) = plt.subplots(1, 2, figsize=(10, 4.2))
    named = {"xytext": (-9, 0), "textcoords": "offset points", "ha": "right", "va": "center", "fontsize": "small"}

    floor = _log_floor([*gd, *svd[~exact]])
    losses.plot(ranks, gd, "o-", ms=11, mfc="none", mew=1.5, label="gradient descent, final loss")
    losses.plot(ranks[~exact], svd[~exact], "s--", ms=5, color="C1", label="truncated SVD (the optimum)")
    losses.plot(ranks[exact], np.full(exact.sum(), floor), "v", ms=8, color="C1")
    for rank in ranks[exact]:
        losses.annotate("optimum 0 (exact)", (rank, floor), **named)
    _log_axis(losses)
    losses.set(ylim=(floor / 3, 3 * gd.max()), title="Final loss per rank", ylabel=loss_label)

    gap = gd - svd
    gap_floor = _log_floor(gap)
    rounded = gap <= 0
    shown = np.where(rounded, gap_floor, gap)
    gaps.vlines(ranks, gap_floor, shown, color="C0", alpha=0.4)
    gaps.plot(ranks[~rounded], shown[~rounded], "o", color="C0", label="GD − optimum")
    if rounded.any():
        gaps.plot(ranks[rounded], shown[rounded], "v", mfc="none", color="C0", label="GD − optimum ≤ 0 (rounding)")
    for rank, value in zip(ranks[exact], shown[exact], strict=True):
        gaps.annotate("optimum 0 (exact):\nthe gap is GD's loss", (rank, value), **named)
    _log_axis(gaps)
    gaps.set(
        ylim=(gap_floor / 3, 30 * shown.max()), title="GD's gap to the optimum", ylabel=f"GD − optimum: {loss_label}"
    )

    for ax in (losses, gaps):
        ax.set(xlabel="rank r", xticks=list(ranks), xlim=(ranks.min() - 0.5, ranks.max() + 0.5))
    _legend_below(fig, ncol=4)
    set_margins(fig, left=0.9, bottom=0.6 + LEGEND_HEIGHT, wspace=0.35)
    return fig


def completion_figure(fractions: Sequence[dict[str, Any]], unit: str) -> Figure:
    """Exercise 1 with missing entries: the RMSE on the hidden entries against the fraction hidden, for gradient
    descent (mean ± std over seeds, each seed faint), column means and iterative SVD imputation.

    ``fractions``: ``results["completion"]["fractions"]``. The methods, and the seeds beside their mean, sit
    slightly apart along x, so that equal errors do not hide one another's markers.
    """
    x = np.array([f["fraction"] for f in fractions])
    shift = 0.015 * (x.max() - x.min() or 1)
    mean = [f["gd_rmse"]["mean"] for f in fractions]
    std = [f["gd_rmse"]["std"] for f in fractions]
    per_seed = [f["gd_rmse_per_seed"] for f in fractions]
    fig, ax = plt.subplots(figsize=(6.5, 4.4))
    ax.errorbar(x - shift, mean, yerr=std, fmt="none", capsize=4, color="C0")
    ax.plot(x - shift, mean, "o-", color="C0", label="gradient descent, mean (bars: ± std)")
    ax.scatter(
        np.repeat(x - 2 * shift, [len(p) for p in per_seed]),
        np.concatenate(per_seed),
        s=14,
        color="C0",
        alpha=0.35,
        label="gradient descent, one seed",
    )
    ax.plot(x, [f["column_mean_rmse"] for f in fractions], "s--", color="C2", label="column means")
    ax.plot(x + shift, [f["hard_impute_rmse"] for f in fractions], "^-.", color="C3", label="iterative SVD imputation")
    ax.set_xticks(x, [f"{100 * f:g} %" for f in x])
    ax.set(
        ylim=(0, None),
        title="Held-out error of the filled-in entries",
        xlabel="fraction of the entries hidden",
        ylabel=f"RMSE on the hidden entries ({unit})",
    )
    _legend_below(fig, ncol=2)
    set_margins(fig, left=0.8, bottom=0.6 + 2 * LEGEND_HEIGHT)
    return fig
