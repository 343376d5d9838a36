"""The lab's own plain-PyTorch loops, kept verbatim in spirit as the oracle the Lightning modules are tested against.

They take the same seed-to-weights contract as the modules: after ``torch.manual_seed(S)`` the first draws are
the parameters, in the order the lab draws them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gd_factorise_ad(
    A: torch.Tensor, rank: int, num_epochs: int = 1000, lr: float = 0.01
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exercise 1: factorise ``A ≈ U Vᵀ`` by plain gradient descent on the summed squared error, via autograd.

    U and V are drawn from U(0, 1) with ``torch.rand`` (float32, the default generator) and cast to A's dtype,
    so the same seed starts float32 and float64 runs from the same point.
    """
    U = torch.rand(A.shape[0], rank).to(A.dtype).requires_grad_()
    V = torch.rand(A.shape[1], rank).to(A.dtype).requires_grad_()
    for _ in range(num_epochs):
        loss = F.mse_loss(U @ V.t(), A, reduction="sum")
        loss.backward()
        with torch.no_grad():
            U -= lr * U.grad
            V -= lr * V.grad
            U.grad.zero_()
            V.grad.zero_()
    return U.detach(), V.detach()


def mlp_forward(
    x: torch.Tensor, W1: torch.Tensor, W2: torch.Tensor, b1: torch.Tensor, b2: torch.Tensor
) -> torch.Tensor:
    """Exercise 2's network: ``relu(x @ W1 + b1) @ W2 + b2`` (logits)."""
    return torch.relu(x @ W1 + b1) @ W2 + b2


def sgd_mlp(
    x: torch.Tensor,
    y: torch.Tensor,
    hidden: int = 12,
    num_classes: int = 3,
    num_epochs: int = 100,
    lr: float = 0.01,
    reduction: str = "sum",
) -> dict[str, torch.Tensor]:
    """Exercise 2: train the MLP with a plain gradient step on the full batch; returns the final weights.

    W1 and W2 come from ``torch.randn`` in that order; b1 and b2 are scalars initialised to 0, as in the lab.
    """
    W1 = torch.randn(x.shape[1], hidden, requires_grad=True)
    W2 = torch.randn(hidden, num_classes, requires_grad=True)
    b1 = torch.tensor(0.0, requires_grad=True)
    b2 = torch.tensor(0.0, requires_grad=True)
    params = (W1, W2, b1, b2)
    for _ in range(num_epochs):
        loss = F.cross_entropy(mlp_forward(x, *params), y, reduction=reduction)
        loss.backward()
        with torch.no_grad():
            for p in params:
                p -= lr * p.grad
                p.grad.zero_()
    return {"W1": W1.detach(), "W2": W2.detach(), "b1": b1.detach(), "b2": b2.detach()}


def gd_factorise_masked(
    A: torch.Tensor, M: torch.Tensor, rank: int, num_epochs: int = 1000, lr: float = 0.01
) -> tuple[torch.Tensor, torch.Tensor]:
    """The course's ``sgd_factorise_masked`` as a plain gradient step per epoch: Exercise 1 with the summed squared
    error over the entries the boolean mask ``M`` marks observed (the others may hold anything, NaN included)."""
    U = torch.rand(A.shape[0], rank).to(A.dtype).requires_grad_()
    V = torch.rand(A.shape[1], rank).to(A.dtype).requires_grad_()
    observed = A[M]
    for _ in range(num_epochs):
        loss = F.mse_loss((U @ V.t())[M], observed, reduction="sum")
        loss.backward()
        with torch.no_grad():
            U -= lr * U.grad
            V -= lr * V.grad
            U.grad.zero_()
            V.grad.zero_()
    return U.detach(), V.detach()
