"""The report's own figures: loss curves, the spread of accuracy over seeds, the rank sweep."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from lab2_lightning.callbacks.figures import set_margins

Curve = dict[str, Sequence[float]]  # {"step": [...], "value": [...]}, one member's points


def loss_curves_figure(gd_curve: Curve, svd_loss: float, mlp_curves: dict[str, Curve]) -> Figure:
    """Exercise 1's GD loss above the SVD optimum, and Exercise 2's training and validation loss, per step."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(gd_curve["step"], np.asarray(gd_curve["value"]) - svd_loss, label="train/loss − SVD optimum")
    left.set(yscale="log", title="Exercise 1 (seed 0): distance to the optimum", xlabel="step (lab epoch)")
    left.legend()
    # Labelled with their TensorBoard tags: train/loss is computed in each step, val/loss after every 10th.
    labels = {"train/loss": "train/loss (in each step)", "val/loss": "val/loss (after the step)"}
    for key, curve in mlp_curves.items():
        right.plot(curve["step"], curve["value"], "o-" if key == "val/loss" else "-", ms=3, label=labels.get(key, key))
    right.set(yscale="log", title="Exercise 2 (seed 0): cross-entropy", xlabel="step (lab epoch)")
    right.legend()
    set_margins(fig, left=0.6, bottom=0.6, wspace=0.12)
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
    fig.tight_layout()  # the class names come from the data: their room is measured, not fixed
    return fig


def rank_sweep_figure(ranks: Sequence[int], gd_losses: Sequence[float], svd_losses: Sequence[float]) -> Figure:
    """GD's final loss beside the SVD optimum for every rank (the optimum is 0 at full rank)."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot(ranks, gd_losses, "o-", label="gradient descent")
    ax.plot(ranks, svd_losses, "s--", label="truncated SVD (optimum)")
    ax.set(yscale="symlog", xlabel="rank r", ylabel="summed squared error", title="Rank sweep")
    ax.set_xticks(list(ranks))
    ax.legend()
    set_margins(fig, left=0.75, bottom=0.6)
    return fig
