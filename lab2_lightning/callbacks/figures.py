"""Matplotlib figures shared by TensorBoard and the report (the entry points choose the headless Agg backend)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def _scatter_by_class(ax, points: np.ndarray, labels: np.ndarray, class_names: Sequence[str]) -> None:
    y = points[:, 1] if points.shape[1] > 1 else np.zeros(len(points))
    if not class_names:
        ax.scatter(points[:, 0], y, s=12)
        return
    for k, name in enumerate(class_names):
        chosen = labels == k
        ax.scatter(points[chosen, 0], y[chosen], s=12, label=name)
    ax.legend(fontsize="small")


def pca_vs_gd_figure(
    scores: np.ndarray, U: np.ndarray, labels: np.ndarray, class_names: Sequence[str], card: bool = False
) -> Figure:
    """Exercise 1.3: the data on the first two principal axes beside the rows of GD's U, coloured by class.

    ``card``: small (4.6 x 2.5 inches, to be drawn at 72 dpi) with small type, for TensorBoard, whose image cards
    show about 330 pixels across; otherwise the report's size.
    """
    size, text = ((4.6, 2.5), 8) if card else ((7, 3.4), None)
    with plt.rc_context({"font.size": text} if text else {}):
        fig, (left, right) = plt.subplots(1, 2, figsize=size)
        _scatter_by_class(left, scores, labels, class_names)
        left.set(title="Data on the first two principal axes", xlabel="PC 1", ylabel="PC 2")
        _scatter_by_class(right, U, labels, class_names)
        right.set(title="Rows of U (gradient descent)", xlabel="U[:, 0]", ylabel="U[:, 1]")
        fig.tight_layout()
    if card:
        fig.set_dpi(72)
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
