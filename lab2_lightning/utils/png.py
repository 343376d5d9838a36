"""A Matplotlib figure as the bytes of a PNG file: what the report's files and TensorBoard's images are made of."""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def png(figure: Figure, dpi: float | str = "figure") -> bytes:
    """The figure drawn at ``dpi`` (or at its own), then closed."""
    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", dpi=dpi)
    finally:
        plt.close(figure)
    return buffer.getvalue()
