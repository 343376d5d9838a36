"""The closed-form loss against autograd through the lab's ``mse_loss``: 2-D and batched factors, blocks, shards,
zero-padded ranks, float32 cancellation, and ``gradcheck``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lab2_lightning.models.lowrank import low_rank_squared_error, squared_norm

EPS32 = torch.finfo(torch.float32).eps
# The float32 loss is a difference of terms of size ‖A‖²: its error is measured against that (up to 0.2 eps ‖A‖²
# seen), the gradients' against the size of their terms, |A| |V| and |U| |V|ᵀ|V|.
TOLERANCE = {torch.float64: 1e-12, torch.float32: 4e-6}


def factors(m: int, n: int, r: int, dtype: torch.dtype, members: int | None = None, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    batch = () if members is None else (members,)
    A = torch.randn(m, n, dtype=torch.float64, generator=generator).to(dtype)
    U = torch.rand(*batch, m, r, dtype=torch.float64, generator=generator).to(dtype)
    V = torch.rand(*batch, n, r, dtype=torch.float64, generator=generator).to(dtype)
    return U, V, A


def reference(U: torch.Tensor, V: torch.Tensor, A: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The oracle: per-member autograd through ``mse_loss`` (in A's dtype), loss and gradients."""
    U, V = U.detach().clone().requires_grad_(), V.detach().clone().requires_grad_()
    if U.dim() == 2:
        loss = F.mse_loss(U @ V.T, A, reduction="sum")
        loss.backward()
    else:
        loss = torch.stack([F.mse_loss(u @ v.T, A, reduction="sum") for u, v in zip(U, V, strict=True)])
        loss.sum().backward()
    return loss.detach(), U.grad, V.grad


def closed_form(U: torch.Tensor, V: torch.Tensor, A: torch.Tensor, **kwargs) -> tuple[torch.Tensor, ...]:
    U, V = U.detach().clone().requires_grad_(), V.detach().clone().requires_grad_()
    loss = low_rank_squared_error(U, V, A, **kwargs)
    loss.sum().backward()
    return loss.detach(), U.grad, V.grad


def assert_matches(ours: tuple[torch.Tensor, ...], oracle: tuple[torch.Tensor, ...], A: torch.Tensor) -> None:
    tol = TOLERANCE[A.dtype]
    loss, grad_U, grad_V = ours
    ref_loss, ref_U, ref_V = oracle
    assert loss.shape == ref_loss.shape and loss.dtype == A.dtype
    torch.testing.assert_close(loss, ref_loss, rtol=tol, atol=tol * float(squared_norm(A)))
    for grad, ref in ((grad_U, ref_U), (grad_V, ref_V)):
        torch.testing.assert_close(grad, ref, rtol=tol, atol=tol * float(ref.abs().max()))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(("m", "n", "r"), [(150, 4, 2), (37, 23, 5), (8, 30, 8)])
@pytest.mark.parametrize("block_rows", [None, 1, 7, 16, 1000])
def test_equals_autograd(dtype: torch.dtype, m: int, n: int, r: int, block_rows: int | None) -> None:
    U, V, A = factors(m, n, r, dtype, seed=m)
    assert_matches(closed_form(U, V, A, block_rows=block_rows), reference(U, V, A), A)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("block_rows", [None, 3, 10, 64])
def test_batched_members_equal_separate_autograd(dtype: torch.dtype, block_rows: int | None) -> None:
    U, V, A = factors(41, 13, 3, dtype, members=4, seed=1)
    ours = closed_form(U, V, A, block_rows=block_rows)
    assert ours[0].shape == (4,)
    assert_matches(ours, reference(U, V, A), A)


def test_each_member_gets_its_own_gradient() -> None:
    """The caller sums the members' losses; any weights on them scale only that member's gradients."""
    U, V, A = factors(20, 9, 2, torch.float64, members=3)
    weights = torch.tensor([0.5, 0.0, -2.0], dtype=torch.float64)
    U1, V1 = U.clone().requires_grad_(), V.clone().requires_grad_()
    (low_rank_squared_error(U1, V1, A) * weights).sum().backward()
    _, ref_U, ref_V = reference(U, V, A)
    torch.testing.assert_close(U1.grad, ref_U * weights.view(3, 1, 1), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(V1.grad, ref_V * weights.view(3, 1, 1), rtol=1e-12, atol=1e-12)


def test_given_squared_norm_and_loss_without_gradients() -> None:
    U, V, A = factors(30, 12, 4, torch.float64)
    expected = F.mse_loss(U @ V.T, A, reduction="sum")
    given = low_rank_squared_error(U, V, A, a_sq_norm=(A**2).sum())
    with torch.no_grad():  # reads A only for A V
        bare = low_rank_squared_error(U.requires_grad_(), V.requires_grad_(), A, block_rows=7)
    torch.testing.assert_close(given, expected, rtol=1e-12, atol=0)
    torch.testing.assert_close(bare, expected, rtol=1e-12, atol=0)
    assert float(squared_norm(A, block_rows=7)) == pytest.approx(float((A**2).sum()), rel=1e-14)


def test_gradcheck() -> None:
    U, V, A = factors(9, 6, 2, torch.float64)
    assert torch.autograd.gradcheck(
        lambda U, V: low_rank_squared_error(U, V, A, block_rows=4), (U.requires_grad_(), V.requires_grad_())
    )
    U, V, _ = factors(9, 6, 2, torch.float64, members=3, seed=2)
    assert torch.autograd.gradcheck(
        lambda U, V: low_rank_squared_error(U, V, A, block_rows=5), (U.requires_grad_(), V.requires_grad_())
    )


def test_zero_padded_rank_stays_exactly_zero() -> None:
    """A rank-1 member padded to rank 3 beside a rank-3 one: its extra columns get exactly zero gradient, so after
    gradient steps they are still exactly zero and the member follows its own rank-1 run."""
    U, V, A = factors(25, 10, 3, torch.float64, members=2)
    U[1, :, 1:] = 0
    V[1, :, 1:] = 0
    U1, V1 = U[1, :, :1].clone().requires_grad_(), V[1, :, :1].clone().requires_grad_()
    U.requires_grad_(), V.requires_grad_()
    lr = 1e-3
    for _ in range(20):
        for params, loss in (((U, V), low_rank_squared_error(U, V, A, block_rows=6).sum()),
                             ((U1, V1), low_rank_squared_error(U1, V1, A))):  # fmt: skip
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                for p, g in zip(params, grads, strict=True):
                    p -= lr * g
    assert torch.equal(U[1, :, 1:], torch.zeros(25, 2, dtype=torch.float64))
    assert torch.equal(V[1, :, 1:], torch.zeros(10, 2, dtype=torch.float64))
    torch.testing.assert_close(U[1, :, :1], U1, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(V[1, :, :1], V1, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("members", [None, 2])
def test_row_shards_add_up_to_the_whole(members: int | None) -> None:
    """DDP's split: each rank holds some rows of A and U and all of V, and passes its own shard's ‖A‖². The shards'
    losses and V-gradients add up to the whole's; their U-gradients are the whole's rows."""
    U, V, A = factors(23, 8, 3, torch.float64, members=members)
    whole = closed_form(U, V, A)
    losses, grads_U, grads_V = [], [], []
    for rows in (slice(0, 5), slice(5, 6), slice(6, 23)):
        U_shard = U[..., rows, :]
        loss, grad_U, grad_V = closed_form(U_shard, V, A[rows], a_sq_norm=squared_norm(A[rows]), block_rows=4)
        losses.append(loss)
        grads_U.append(grad_U)
        grads_V.append(grad_V)
    torch.testing.assert_close(sum(losses), whole[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(torch.cat(grads_U, dim=-2), whole[1], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(sum(grads_V), whole[2], rtol=1e-12, atol=1e-12)


def test_float32_near_an_exact_fit() -> None:
    """U Vᵀ is A but for noise 10⁻² of its entries, so ‖A‖² is about 5·10⁴ times the loss and the expansion
    cancels all but 1/(5·10⁴) of it. In float32 the loss stays within 0.5 eps ‖A‖² (0.3% of the loss) of float64's
    on the same numbers; the same expansion accumulated in float32 misses that on some of these matrices."""
    ours, naive = [], []
    for seed in range(6):
        generator = torch.Generator().manual_seed(seed)
        m, n, r = 2000, 300, 5
        U = 10 * torch.randn(m, r, dtype=torch.float64, generator=generator)
        V = 10 * torch.randn(n, r, dtype=torch.float64, generator=generator)
        A = (U @ V.T + torch.randn(m, n, dtype=torch.float64, generator=generator)).float()
        U, V = U.float(), V.float()
        exact = float(F.mse_loss(U.double() @ V.double().T, A.double(), reduction="sum"))
        scale = EPS32 * float(squared_norm(A))
        assert scale > 5e-3 * exact  # one float32 rounding of ‖A‖² alone is 0.6% of the loss
        ours.append(abs(float(low_rank_squared_error(U, V, A)) - exact) / scale)
        in_float32 = (A * A).sum() - 2 * (U * (A @ V)).sum() + ((U.T @ U) * (V.T @ V)).sum()
        naive.append(abs(float(in_float32) - exact) / scale)
    assert max(ours) < 0.5 < max(naive), (ours, naive)


def test_shape_errors() -> None:
    U, V, A = factors(6, 4, 2, torch.float64)
    with pytest.raises(ValueError, match="shapes do not match"):
        low_rank_squared_error(U, V[:3], A)
    with pytest.raises(ValueError, match="expected U"):
        low_rank_squared_error(U, V.unsqueeze(0), A)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_on_gpu_equals_autograd(dtype: torch.dtype) -> None:
    U, V, A = factors(300, 70, 4, dtype, members=3)
    U, V, A = U.cuda(), V.cuda(), A.cuda()
    assert_matches(closed_form(U, V, A), reference(U, V, A), A)
    assert_matches(closed_form(U[0], V[0], A), reference(U[0], V[0], A), A)
