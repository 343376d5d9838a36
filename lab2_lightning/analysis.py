"""Linear-algebra yardsticks for Exercise 1: the Eckart–Young optimum, PCA and how GD's U relates to it."""

from __future__ import annotations

import torch


def svd_optimum_loss(A: torch.Tensor, rank: int) -> float:
    """The least summed squared error of any rank-``rank`` approximation of ``A`` (Eckart–Young).

    It is the sum of the squared singular values that a rank-``rank`` truncated SVD discards.
    """
    singular_values = torch.linalg.svdvals(A)
    return float((singular_values[rank:] ** 2).sum())


def pca_scores(A: torch.Tensor, k: int) -> torch.Tensor:
    """Coordinates of the rows of a centred ``A`` on its first ``k`` principal axes (right singular vectors)."""
    _, _, Vh = torch.linalg.svd(A, full_matrices=False)
    return A @ Vh[:k].T


def principal_angles(X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """Principal angles (radians, ascending) between the column spaces of ``X`` and ``Y``.

    All zero means the two spans coincide: GD's U and the PCA scores then differ only by an invertible linear
    map of their columns (the lab's "rotation and scaling").
    """
    qx, _ = torch.linalg.qr(X)
    qy, _ = torch.linalg.qr(Y)
    cosines = torch.linalg.svdvals(qx.T @ qy).clamp(-1.0, 1.0)
    return torch.arccos(cosines).sort().values


def linear_map_residual(X: torch.Tensor, Y: torch.Tensor) -> float:
    """``min_M ||X M - Y|| / ||Y||`` (Frobenius): how far ``Y`` is from a linear map of ``X``'s columns."""
    M = torch.linalg.lstsq(X, Y).solution
    return float(torch.linalg.matrix_norm(X @ M - Y) / torch.linalg.matrix_norm(Y))
