"""Matplotlib figures shared by TensorBoard and the report (the entry points choose the headless Agg backend)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

Curve = dict[str, Sequence[float]]  # {"step": [...], "value": [...]}, as MetricHistory records it


def _scatter_by_class(ax, points: np.ndarray, labels: np.ndarray, class_names: Sequence[str]) -> None:
    y = points[:, 1] if points.shape[1] > 1 else np.zeros(len(points))
    if not class_names:
        ax.scatter(points[:, 0], y, s=12)
        return
    for k, name in enumerate(class_names):
        chosen = labels == k
        ax.scatter(points[chosen, 0], y[chosen], s=12, label=name)
    ax.legend(fontsize="small")


def pca_vs_gd_figure(scores: np.ndarray, U: np.ndarray, labels: np.ndarray, class_names: Sequence[str]) -> Figure:
    """Exercise 1.3: the data on the first two principal axes beside the rows of GD's U, coloured by class."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    _scatter_by_class(left, scores, labels, class_names)
    left.set(title="Data on the first two principal axes", xlabel="PC 1", ylabel="PC 2")
    _scatter_by_class(right, U, labels, class_names)
    right.set(title="Rows of U (gradient descent)", xlabel="U[:, 0]", ylabel="U[:, 1]")
    fig.tight_layout()
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
    fig.tight_layout()
    return fig


def loss_curves_figure(gd_curve: Curve, svd_loss: float, mlp_curves: dict[str, Curve]) -> Figure:
    """Exercise 1's GD loss above the SVD optimum, and Exercise 2's training and validation loss, per step."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(gd_curve["step"], np.asarray(gd_curve["value"]) - svd_loss, label="GD loss − SVD optimum")
    left.set(yscale="log", title="Exercise 1: distance to the Eckart–Young optimum", xlabel="step (lab epoch)")
    left.legend()
    labels = {"train/loss": "train (before each step)", "val/loss": "validation (after the step)"}
    for key, curve in mlp_curves.items():
        right.plot(curve["step"], curve["value"], "o-" if key == "val/loss" else "-", ms=3, label=labels.get(key, key))
    right.set(yscale="log", title="Exercise 2: cross-entropy", xlabel="step (lab epoch)")
    right.legend()
    fig.tight_layout()
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
        ax.set(title=f"{split}: per-class accuracy over seeds", ylim=(-0.02, 1.02))
    fig.tight_layout()
    return fig


def rank_sweep_figure(ranks: Sequence[int], gd_losses: Sequence[float], svd_losses: Sequence[float]) -> Figure:
    """GD's final loss beside the SVD optimum for every rank (the optimum is 0 at full rank)."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot(ranks, gd_losses, "o-", label="gradient descent")
    ax.plot(ranks, svd_losses, "s--", label="truncated SVD (optimum)")
    ax.set(yscale="symlog", xlabel="rank r", ylabel="summed squared error", title="Rank sweep")
    ax.set_xticks(list(ranks))
    ax.legend()
    fig.tight_layout()
    return fig
