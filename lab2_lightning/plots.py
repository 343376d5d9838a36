"""Every figure of the project, in one place: the report's, which TensorBoard shows too."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


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


def _scatter_by_class(
    ax, points: np.ndarray, labels: np.ndarray, class_names: Sequence[str], legend: bool = True, size: float = 12
) -> None:
    y = points[:, 1] if points.shape[1] > 1 else np.zeros(len(points))
    if not class_names:
        ax.scatter(points[:, 0], y, s=size)
        return
    for k, name in enumerate(class_names):
        chosen = labels == k
        ax.scatter(points[chosen, 0], y[chosen], s=size, label=name)
    if legend:
        ax.legend(fontsize="small")


def pca_vs_gd_figure(scores: np.ndarray, U: np.ndarray, labels: np.ndarray, class_names: Sequence[str]) -> Figure:
    """Exercise 1.3: the data on the first two principal axes beside the rows of GD's U, coloured by class."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(7, 3.4))
    _scatter_by_class(left, scores, labels, class_names)
    left.set(title="Data on the first two principal axes", xlabel="PC 1", ylabel="PC 2")
    _scatter_by_class(right, U, labels, class_names)
    right.set(title="Rows of U (gradient descent)", xlabel="U[:, 0]", ylabel="U[:, 1]")
    set_margins(fig, left=0.7, bottom=0.6, right=0.15, top=0.35, wspace=0.3)
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
    ax.set(title=title, xlabel="predicted", ylabel="true")
    fig.tight_layout()  # the class names come from the data: their room is measured, not fixed
    return fig


Curve = dict[str, Sequence[float]]  # {"step": [...], "value": [...]}, one member's points


def loss_curves_figure(gd_curve: Curve, svd_loss: float, mlp_curves: dict[str, Curve]) -> Figure:
    """Exercise 1's GD loss above the SVD optimum, and Exercise 2's training and validation loss, per step."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(gd_curve["step"], np.asarray(gd_curve["value"]) - svd_loss, label="GD loss − SVD optimum")
    left.set(
        yscale="log",
        title="Exercise 1 (seed 0): distance to the optimum",
        xlabel="step (lab epoch)",
        ylabel="summed squared error − optimum",
    )
    left.legend(loc="upper right")  # "best" searches every point: slow
    for key, curve in mlp_curves.items():
        right.plot(curve["step"], curve["value"], "o-" if key.startswith("validation") else "-", ms=3, label=key)
    right.set(
        yscale="log",
        title="Exercise 2 (seed 0): cross-entropy",
        xlabel="step (lab epoch)",
        ylabel="cross-entropy (sum over the split's rows)",
    )
    right.legend(loc="upper right")
    set_margins(fig, left=0.75, bottom=0.6, wspace=0.3)
    return fig


def accuracy_spread_figure(per_seed: dict[str, dict[str, Sequence[float]]], class_names: Sequence[str]) -> Figure:
    """Per-class accuracy of every seed, one panel per split: shows how much the random start matters."""
    fig, axes = plt.subplots(1, len(per_seed), figsize=(5 * len(per_seed), 4), squeeze=False, sharey=True)
    for ax, (split, by_class) in zip(axes[0], per_seed.items(), strict=True):
        for k, name in enumerate(class_names):
            values = [v for v in by_class[name] if v is not None]
            jitter = np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else np.zeros(len(values))
            ax.scatter(k + jitter, values, s=18, alpha=0.7)
        ax.set_xticks(range(len(class_names)), class_names, rotation=15)
        ax.set(title=f"{split}: per-class accuracy over seeds", ylim=(-0.02, 1.02), ylabel="accuracy")
    fig.tight_layout()  # the class names come from the data: their room is measured, not fixed
    return fig


def rank_sweep_figure(ranks: Sequence[int], gd_losses: Sequence[float], svd_losses: Sequence[float]) -> Figure:
    """GD's final loss beside the SVD optimum for every rank (the optimum is 0 at full rank)."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot(ranks, gd_losses, "o-", label="gradient descent")
    ax.plot(ranks, svd_losses, "s--", label="truncated SVD (optimum)")
    ax.set(yscale="symlog", xlabel="rank r", ylabel="summed squared error", title="Rank sweep")
    ax.set_xticks(list(ranks))
    ax.legend(loc="upper right")
    set_margins(fig, left=0.75, bottom=0.6)
    return fig
