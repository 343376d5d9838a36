"""Linear-algebra yardsticks for Exercise 1: the Eckart–Young optimum, PCA and how GD's U relates to it."""

from __future__ import annotations

import torch


def svd_optimum_loss(A: torch.Tensor, rank: int) -> float:
    """The least summed squared error of any rank-``rank`` approximation of ``A`` (Eckart–Young).

    It is the sum of the squared singular values that a rank-``rank`` truncated SVD discards.
    """
    singular_values = torch.linalg.svdvals(A)
    return float((singular_values[rank:] ** 2).sum())


def pca_scores(A: torch.Tensor, k: int, method: str = "exact") -> torch.Tensor:
    """Coordinates of the rows of a centred ``A`` on its first ``k`` principal axes (right singular vectors).

    ``method="randomized"`` finds the axes with ``torch.svd_lowrank``, as :func:`svd_optimum` does.
    """
    if method == "randomized":
        _, _, V = torch.svd_lowrank(A, q=min(k + 10, min(A.shape)), niter=4)
        return A @ V[:, :k]
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
    """``min_M ||X M - Y|| / ||Y||`` (Frobenius): how far ``Y`` is from a linear map of ``X``'s columns.

    The best ``X M`` is the projection of ``Y`` on span(X), taken through a QR factorisation of X. (``lstsq``
    gives the same number, but its last bits changed from one process to the next in MKL, and this residual is
    mostly last bits when the spans agree.)
    """
    Q, _ = torch.linalg.qr(X)
    return float(torch.linalg.matrix_norm(Y - Q @ (Q.T @ Y)) / torch.linalg.matrix_norm(Y))


def svd_optimum(A: torch.Tensor, rank: int, method: str = "auto") -> tuple[float, str]:
    """The Eckart–Young optimum and the method that computed it: ``exact`` or ``randomized``.

    ``exact`` takes every singular value (:func:`svd_optimum_loss`). ``randomized`` takes only the top ``rank``
    from ``torch.svd_lowrank`` (4 power iterations, 10 extra directions) and subtracts their squares from
    ``||A||²``, in float64; on a large matrix that is a fraction of the time, and exact enough as long as the
    spectrum has a gap after ``rank``. ``auto`` picks ``randomized`` for matrices whose smaller side exceeds 1000.
    """
    if method == "auto":
        method = "randomized" if min(A.shape) > 1000 and rank + 10 < min(A.shape) else "exact"
    if method == "exact":
        return svd_optimum_loss(A.to(torch.float64), rank), method
    A64 = A.to(torch.float64)
    _, S, _ = torch.svd_lowrank(A64, q=min(rank + 10, min(A.shape)), niter=4)
    total = torch.linalg.vector_norm(A64) ** 2
    return float(total - (S[:rank] ** 2).sum()), method


def largest_singular_value(A: torch.Tensor, iterations: int = 30) -> float:
    """σ₁(A) by power iteration on AᵀA from a fixed start: cheap (two passes over A per iteration), deterministic."""
    v = torch.ones(A.shape[1], dtype=A.dtype, device=A.device)
    for _ in range(iterations):
        v = A.T @ (A @ v)
        v = v / torch.linalg.vector_norm(v)
    return float(torch.linalg.vector_norm(A @ v))


def auto_lr(U: torch.Tensor, V: torch.Tensor, A: torch.Tensor) -> float:
    """A step size for plain GD on ``||U Vᵀ - A||²`` that is stable from the start on any matrix.

    The loss's curvature is at most about ``L = 2 (σ₁(U)² + σ₁(V)² + σ₁(A))`` near the initial factors (the
    Hessian's diagonal blocks are ``2 VᵀV`` and ``2 UᵀU``; the cross terms grow with the residual, bounded by
    ``σ₁(U) σ₁(V) + σ₁(A)``, here folded in by ``σ₁(U)σ₁(V) <= (σ₁(U)² + σ₁(V)²) / 2``). The step is ``1 / L``:
    on Iris it gives 0.0046, about half the lab's 0.01, which the lab found stable.
    """
    s_u = float(torch.linalg.matrix_norm(U.detach(), ord=2))
    s_v = float(torch.linalg.matrix_norm(V.detach(), ord=2))
    return 1.0 / (2 * (s_u**2 + s_v**2 + largest_singular_value(A)))
