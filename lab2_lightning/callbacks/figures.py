"""Matplotlib figures shared by TensorBoard and the report (the entry points choose the headless Agg backend)."""

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


def pca_vs_gd_figure(
    scores: np.ndarray, U: np.ndarray, labels: np.ndarray, class_names: Sequence[str], card: bool = False
) -> Figure:
    """Exercise 1.3: the data on the first two principal axes beside the rows of GD's U, coloured by class.

    ``card``: small (4.6 x 2.5 inches, drawn at 72 dpi), with short titles and one legend under the panels, for
    TensorBoard, whose image cards show about 330 pixels across; otherwise the report's size.
    """
    titles = ("PCA: first two axes", "Rows of GD's U") if card else (
        "Data on the first two principal axes", "Rows of U (gradient descent)"
    )  # fmt: skip
    with plt.rc_context({"font.size": 8} if card else {}):
        fig, (left, right) = plt.subplots(1, 2, figsize=(4.6, 2.7) if card else (7, 3.4))
        _scatter_by_class(left, scores, labels, class_names, legend=not card, size=6 if card else 12)
        left.set(title=titles[0], xlabel="PC 1", ylabel="PC 2")
        _scatter_by_class(right, U, labels, class_names, legend=not card, size=6 if card else 12)
        right.set(title=titles[1], xlabel="U[:, 0]", ylabel="U[:, 1]")
        if card and class_names:
            fig.legend(*left.get_legend_handles_labels(), loc="lower center", ncol=len(class_names), frameon=False)
        set_margins(fig, left=0.7, bottom=0.75 if card else 0.6, right=0.15, top=0.35, wspace=0.42 if card else 0.3)
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
    fig.tight_layout()  # the class names come from the data: their room is measured, not fixed
    return fig
