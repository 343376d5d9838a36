"""The linear algebra of Exercise 1: the Eckart–Young optimum, PCA and how GD's U relates to it, the step size of
``lr auto``, and iterative SVD imputation of a matrix with missing entries."""

from __future__ import annotations

import math

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
    ``||A||²`` (summed in float64, the singular values found in A's own dtype, so that a float32 matrix is not
    copied); on a large matrix that is a fraction of the time, and exact enough as long as the spectrum has a gap
    after ``rank``. ``auto`` picks ``randomized`` for matrices whose smaller side exceeds 1000.
    """
    if method == "auto":
        method = "randomized" if min(A.shape) > 1000 and rank + 10 < min(A.shape) else "exact"
    if method == "exact":
        return svd_optimum_loss(A.to(torch.float64), rank), method
    _, S, _ = torch.svd_lowrank(A, q=min(rank + 10, min(A.shape)), niter=4)  # in A's dtype: no copy of A
    total = torch.linalg.vector_norm(A, dtype=torch.float64) ** 2
    return float(total - (S[:rank].double() ** 2).sum()), method


def largest_singular_value(A: torch.Tensor, iterations: int = 30) -> float:
    """σ₁(A) by power iteration on AᵀA from a fixed start: cheap (two passes over A per iteration), deterministic."""
    v = torch.ones(A.shape[1], dtype=A.dtype, device=A.device)
    for _ in range(iterations):
        v = A.T @ (A @ v)
        v = v / torch.linalg.vector_norm(v)
    return float(torch.linalg.vector_norm(A @ v))


def auto_lr(
    U: torch.Tensor, V: torch.Tensor, A: torch.Tensor, observed: tuple[torch.Tensor, torch.Tensor] | None = None
) -> float:
    """A step size for plain GD on ``||U Vᵀ - A||²`` that is stable from the start on any matrix.

    The loss's curvature is at most about ``L = 2 (σ₁(U)² + σ₁(V)² + σ₁(A))`` near the initial factors (the
    Hessian's diagonal blocks are ``2 VᵀV`` and ``2 UᵀU``; the cross terms grow with the residual, bounded by
    ``σ₁(U) σ₁(V) + σ₁(A)``, here folded in by ``σ₁(U)σ₁(V) <= (σ₁(U)² + σ₁(V)²) / 2``). The step is ``1 / L``:
    on Iris it gives 0.0046, about half the lab's 0.01, which the lab found stable.

    With missing entries (``observed``: the rows and columns of the observed ones; ``A``, dense or sparse, is zero
    elsewhere) a row of U meets only the rows of V of its observed columns: its block of the Hessian is at most
    ``2 Σ ||V_j||²`` over them, which on a sparse matrix is far below ``2 σ₁(V)²``. The smaller bound is taken.
    """
    U, V = U.detach(), V.detach()
    A = A.to(U)
    s_u = float(torch.linalg.matrix_norm(U, ord=2)) ** 2
    s_v = float(torch.linalg.matrix_norm(V, ord=2)) ** 2
    if observed is not None:
        row, col = (index.to(U.device) for index in observed)
        s_v = min(s_v, float(torch.zeros(len(U)).to(V).index_add_(0, row, V.square().sum(1)[col]).max()))
        s_u = min(s_u, float(torch.zeros(len(V)).to(U).index_add_(0, col, U.square().sum(1)[row]).max()))
    return 1.0 / (2 * (s_u + s_v + largest_singular_value(A)))


def observed_matrix(row: torch.Tensor, col: torch.Tensor, value: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """The entries as a sparse matrix, zero where nothing is observed."""
    return torch.sparse_coo_tensor(torch.stack([row, col]), value, shape, check_invariants=False).coalesce()


def hard_impute(
    row: torch.Tensor,
    col: torch.Tensor,
    value: torch.Tensor,
    shape: tuple[int, int],
    rank: int,
    iterations: int = 500,
    tol: float = 1e-4,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Iterative SVD imputation ("hard impute"): fill the missing entries with 0 (a centred column's observed
    mean), take the rank-``rank`` truncated SVD, fill the missing entries from it, and repeat until the summed
    squared error on the observed entries changes by less than ``tol`` (relative) from one round to the next, or
    for ``iterations`` rounds. Returns factors ``P`` (rows x rank) and ``Q`` (columns x rank) with ``P Qᵀ`` the
    completed matrix, and the rounds taken. (Run long, hard impute fits the observed entries ever more closely and
    the missing ones worse: where it stops is part of the method.)

    The filled matrix ``X = P_Ω(A − P Qᵀ) + P Qᵀ`` is sparse plus low rank, and is never formed: its top singular
    vectors come from a block power iteration on products with ``X``, warm-started from the previous round's, so
    one matrix with 10⁹ entries and 10⁶ observed costs what its observed entries and factors cost. With
    ``rank + 10`` directions reaching the smaller side the subspace is the whole space, and the SVD exact.
    """
    m, n = shape
    width = min(rank + 10, m, n)
    P = torch.zeros(m, rank, dtype=value.dtype, device=value.device)
    Q = torch.zeros(n, rank, dtype=value.dtype, device=value.device)
    basis = torch.linalg.qr(torch.randn(n, width, generator=torch.Generator().manual_seed(0), dtype=value.dtype))[0]
    basis = basis.to(value.device)
    previous = math.inf
    for rounds in range(iterations + 1):
        residual = observed_matrix(row, col, value - (P[row] * Q[col]).sum(dim=1), shape)
        error = float(residual.values().square().sum())
        if rounds == iterations or abs(previous - error) <= tol * error:
            break
        previous = error
        left = torch.linalg.qr(filled_times(residual, P, Q, basis))[0]
        U, S, Vh = torch.linalg.svd(filled_times(residual.T, Q, P, left).T, full_matrices=False)  # leftᵀ X
        P, Q, basis = (left @ U[:, :rank]) * S[:rank], Vh[:rank].T, Vh.T
    return P, Q, rounds


def filled_times(residual: torch.Tensor, P: torch.Tensor, Q: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
    """``X M`` for the filled matrix ``X = residual + P Qᵀ`` (``Xᵀ M``: pass ``residual.T, Q, P``)."""
    return residual @ M + P @ (Q.T @ M)
