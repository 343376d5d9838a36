"""The plain gradient step both exercises take, with the checks that keep a wrong number from being reported."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch

from lab2_lightning.utils.errors import LabError


def check_lr(lr: float) -> None:
    """A learning rate must be a positive, finite number."""
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise LabError(f"model.lr must be a positive number, got {lr}")


class DivergenceError(LabError):
    """The loss stopped being a finite number: the run's numbers would be meaningless."""


def gradient_step(module: pl.LightningModule, loss: torch.Tensor) -> None:
    """One plain gradient step on ``loss`` with the module's single optimizer (manual optimisation).

    Under DDP each rank holds a shard of the full batch and its loss is that shard's sum, while DDP *averages*
    gradients over ranks: scaling by the world size makes the update the full-batch gradient, as on one device.
    A non-finite loss on any rank stops the run before the step is taken.
    """
    trainer = module.trainer
    finite = torch.isfinite(loss.detach()).to(torch.float32)
    if trainer.world_size > 1:
        finite = trainer.strategy.reduce(finite, reduce_op="min")
    optimizer = module.optimizers()
    if not bool(finite):
        lr = optimizer.param_groups[0]["lr"]
        raise DivergenceError(
            f"training diverged at step {trainer.global_step + 1}: loss is {float(loss.detach())} with lr {lr}; "
            "lower model.lr (or normalise the data) and run again"
        )
    optimizer.zero_grad()
    module.manual_backward(loss * trainer.world_size)
    optimizer.step()


def full_batch_loss(module: pl.LightningModule, loss: torch.Tensor) -> torch.Tensor:
    """The loss of the whole batch: this rank's share summed over the ranks under DDP (each share is a sum over
    its rows, or that sum divided by the split's size for a mean), the loss itself on one device."""
    loss = loss.detach()
    trainer = module.trainer
    return trainer.strategy.reduce(loss, reduce_op="sum") if trainer.world_size > 1 else loss


def logging_step(module: pl.LightningModule) -> bool:
    """Whether Lightning writes this step's scalars (call after the step); skipping ``self.log`` on the other steps
    saves its overhead. Matches Lightning's own rule: every ``log_every_n_steps``-th optimizer step."""
    trainer = module.trainer
    return trainer.global_step % trainer.log_every_n_steps == 0
