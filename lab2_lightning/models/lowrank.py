"""The factorisation's loss ``||U Vᵀ - A||²`` in closed form: A is read only through the skinny products A V, Aᵀ U.

Autograd through ``mse_loss(U @ V.T, A, reduction="sum")`` builds ``U @ V.T``, the difference, its square and their
gradients: several m x n arrays, each a trip through main memory, and 6 m n r flops. Expanding the square,

    L = ‖A‖² - 2 tr(Uᵀ A V) + tr((UᵀU)(VᵀV)),   dL/dU = 2 (U (VᵀV) - A V),   dL/dV = 2 (V (UᵀU) - Aᵀ U),

needs A only in ``A V`` (m x r) and ``Aᵀ U`` (n x r): 4 m n r flops and no m x n array but A. ‖A‖² does not change
between steps, so the caller computes it once (:func:`squared_norm`). On a GPU the two products are two GEMMs over
the whole of A; on a CPU they run over blocks of rows small enough to stay in cache, each block used for both
products while it is there, so A comes from main memory once per step.

The price is precision: near a good fit L is a small difference of terms of size ‖A‖², so in float32 the loss
carries an absolute error of a few tenths of eps ‖A‖² (the rounding of the float32 product A V), where a residual
formed entry by entry would be relatively exact. ‖A‖², the traces and the r x r Gram matrices are accumulated in
float64 so that this error is all there is (the same expansion summed in float32 is off by several eps ‖A‖²); the
gradients' rounding is of the order of autograd's.

Several factorisations of the same A (seeds, or ranks zero-padded to the largest) are a batch: U (B, m, r) and
V (B, n, r) give one loss per member, and the members' columns are concatenated so A is still read once per GEMM.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

# A block of A this size per thread is still in cache when its second product reads it. Measured on 2 threads of an
# AMD EPYC with 1 MiB of L2 a core, 20000 x 2000: 2 MiB blocks were within 10% of the fastest block size at rank
# 16 and 64 in float32 and rank 16 in float64, 15-20% faster than 8 MiB blocks at rank 64 and in float64, and
# 20-40% faster than the two products over the whole of A.
CPU_BLOCK_BYTES_PER_THREAD = 2**20


def default_block_rows(A: torch.Tensor) -> int:
    """Rows per block: :data:`CPU_BLOCK_BYTES_PER_THREAD` of A per thread on a CPU; the whole matrix elsewhere,
    where a GEMM over all of A runs near the memory bandwidth and blocks cost launches."""
    if A.device.type != "cpu":
        return A.shape[0]
    block_bytes = CPU_BLOCK_BYTES_PER_THREAD * torch.get_num_threads()
    return max(1, block_bytes // max(1, A.shape[1] * A.element_size()))


def squared_norm(A: torch.Tensor, block_rows: int | None = None) -> torch.Tensor:
    """``‖A‖²`` as a float64 scalar on A's device, in blocks of rows so no float64 copy of A is made."""
    rows = block_rows or max(1, 2**24 // max(1, A.shape[1]))
    total = torch.zeros((), dtype=torch.float64, device=A.device)
    for start in range(0, A.shape[0], rows):
        total += torch.linalg.vector_norm(A[start : start + rows], dtype=torch.float64).square()
    return total


def skinny_products(
    A: torch.Tensor, U: torch.Tensor, V: torch.Tensor, block_rows: int, transposed: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``A @ V`` and (if ``transposed``) ``A.T @ U`` for U (m, k), V (n, k); in blocks of rows when
    ``block_rows < m``, each block of A feeding both products while it is in cache."""
    m = A.shape[0]
    if block_rows >= m:
        return A @ V, (A.T @ U if transposed else None)
    AV = torch.empty((m, V.shape[1]), dtype=A.dtype, device=A.device)
    AtU = torch.zeros((A.shape[1], U.shape[1]), dtype=A.dtype, device=A.device) if transposed else None
    for start in range(0, m, block_rows):
        stop = min(start + block_rows, m)
        block = A[start:stop]
        torch.mm(block, V, out=AV[start:stop])
        if AtU is not None:
            AtU.addmm_(block.T, U[start:stop])
    return AV, AtU


def _columns(X: torch.Tensor) -> torch.Tensor:
    """(B, rows, r) -> (rows, B r): member b's factor in columns b r ... (b + 1) r - 1."""
    return X.transpose(0, 1).reshape(X.shape[1], -1)


class LowRankSquaredError(torch.autograd.Function):
    """Per-member ``sum((U[b] @ V[b].T - A) ** 2)`` for U (B, m, r), V (B, n, r); gradients for U and V only."""

    @staticmethod
    def forward(
        ctx,
        U: torch.Tensor,
        V: torch.Tensor,
        A: torch.Tensor,
        a_sq_norm: torch.Tensor,
        block_rows: int,
        grad_V: bool,
    ) -> torch.Tensor:
        B, m, r = U.shape
        U_cat = _columns(U)
        # Aᵀ U is needed only for V's gradient: a loss without it reads A in one GEMM.
        AV, AtU = skinny_products(A, U_cat, _columns(V), block_rows, transposed=grad_V)
        U64, V64 = U.double(), V.double()
        gram_U, gram_V = U64.mT @ U64, V64.mT @ V64
        cross = (U_cat.double() * AV).view(m, B, r).sum((0, 2))  # tr(U[b]ᵀ A V[b])
        loss = a_sq_norm - 2 * cross + (gram_U * gram_V.mT).sum((1, 2))
        ctx.save_for_backward(U, V, AV, AtU, gram_U, gram_V)
        return loss.to(A.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        U, V, AV, AtU, gram_U, gram_V = ctx.saved_tensors
        B, m, r = U.shape
        scale = (2 * grad_loss).to(U.dtype).view(B, 1, 1)
        grad_U = grad_V = None
        if ctx.needs_input_grad[0]:
            grad_U = torch.baddbmm(AV.view(m, B, r).transpose(0, 1), U, gram_V.to(U.dtype), beta=-1).mul_(scale)
        if ctx.needs_input_grad[1]:
            n = V.shape[1]
            grad_V = torch.baddbmm(AtU.view(n, B, r).transpose(0, 1), V, gram_U.to(V.dtype), beta=-1).mul_(scale)
        return grad_U, grad_V, None, None, None, None


def low_rank_squared_error(
    U: torch.Tensor,
    V: torch.Tensor,
    A: torch.Tensor,
    a_sq_norm: torch.Tensor | None = None,
    block_rows: int | None = None,
) -> torch.Tensor:
    """``mse_loss(U @ V.T, A, reduction="sum")`` and its gradients, reading A only through ``A V`` and ``Aᵀ U``.

    Args:
        U: (m, r), or (B, m, r) for B factorisations of the same A trained at once.
        V: (n, r), or (B, n, r).
        A: (m, n), the same dtype and device as U and V; it gets no gradient. Under DDP, a shard of rows (with
            U's matching rows): the shards' losses and gradients add up to the whole's.
        a_sq_norm: ``‖A‖²`` (of this A, or shard) from :func:`squared_norm`, computed once by the caller; computed
            here, at the cost of a pass over A, when absent.
        block_rows: rows of A per block (:func:`default_block_rows` when absent: cache-sized on a CPU, all of A on
            a GPU).

    Returns:
        The loss in A's dtype (accumulated in float64): a scalar for 2-D factors, one loss per member, shape (B,),
        for batched ones (the caller sums them; each member's gradient is then its own).
    """
    batched = U.dim() == 3
    if U.dim() not in (2, 3) or V.dim() != U.dim() or A.dim() != 2:
        raise ValueError(
            "expected U (m, r), V (n, r) or U (B, m, r), V (B, n, r), and A (m, n); "
            f"got {tuple(U.shape)}, {tuple(V.shape)}, {tuple(A.shape)}"
        )
    if not batched:
        U, V = U.unsqueeze(0), V.unsqueeze(0)
    if U.shape[0] != V.shape[0] or U.shape[2] != V.shape[2] or (U.shape[1], V.shape[1]) != tuple(A.shape):
        raise ValueError(f"shapes do not match: U {tuple(U.shape)}, V {tuple(V.shape)}, A {tuple(A.shape)}")
    if a_sq_norm is None:
        a_sq_norm = squared_norm(A)
    a_sq_norm = torch.as_tensor(a_sq_norm, dtype=torch.float64, device=A.device)
    grad_V = torch.is_grad_enabled() and V.requires_grad
    loss = LowRankSquaredError.apply(U, V, A, a_sq_norm, block_rows or default_block_rows(A), grad_V)
    return loss if batched else loss[0]
