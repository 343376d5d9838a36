"""What both exercises' modules share: members trained at once by plain full-batch gradient steps, and each step's
loss kept on the device, then checked and logged in bulk.

**Members.** The lab asks for every experiment to be repeated over seeds. A module holds its parameters with a
leading member dimension, one member per seed (or per rank), and its loss is the sum of the members' losses, so one
backward pass gives each member exactly its own gradient: ten seeds train in one run, at little more than the cost
of one on a small problem. Member ``b`` starts from exactly what ``torch.manual_seed(seeds[b])`` followed by the
lab's own draws gives, so its numbers are those of a separate run with that seed.

**Several steps per batch.** A training batch says how many gradient steps to take on it (``batch["steps"]``, the
data's ``steps_per_batch``), so Lightning's per-batch work is paid once for that many steps. Each step still goes
through ``manual_backward`` and the optimizer Lightning wraps, so ``global_step`` counts gradient steps, hooks around
backward and the optimizer see every step, and DDP synchronises every step's gradients.

**Per-step logging without per-step cost.** A step writes its per-member loss into a tensor on the device and
never waits for the device. Once per Lightning epoch (``data.steps_per_epoch`` steps) the tensor is copied to the
host, checked for non-finite values (the first one is reported with its exact step) and written to the loggers,
every step a point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import torch

from lab2_lightning.models.checkpoints import adopt_checkpoint_dtype
from lab2_lightning.utils.errors import LabError
from lab2_lightning.utils.member_loggers import MemberLoggers


def check_lr(lr: float) -> None:
    """A learning rate must be a positive, finite number."""
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise LabError(f"model.lr must be a positive number, got {lr}")


class DivergenceError(LabError):
    """The loss stopped being a finite number: the run's numbers would be meaningless."""


def resolve_seeds(seeds: Sequence[int] | None) -> list[int]:
    """The members' seeds: as given, or the one seed ``seed_everything`` gave the global generator."""
    if seeds is None:
        return [torch.initial_seed()]
    seeds = list(seeds)
    if not seeds:
        raise LabError("model.seeds must name at least one seed (or be null for the run's seed_everything)")
    return seeds


def generator(seed: int) -> torch.Generator:
    """A CPU generator that draws what the global one draws after ``torch.manual_seed(seed)``."""
    return torch.Generator().manual_seed(seed)


_PLAIN = (str, int, float, bool, type(None))


class PlainGradientStep(torch.optim.Optimizer):
    """The lab's update, ``p -= lr * p.grad``, and nothing else: no momentum, no weight decay.

    ``torch.optim.SGD`` computes the same step as ``p + (-lr) * grad`` in one fused operation, which rounds once
    less than the lab's two, and pays for options the lab does not use; this optimizer takes the lab's arithmetic,
    so a training follows the lab's plain loop bit for bit. It clears each gradient after using it, which spares a
    separate ``zero_grad``.

    Args:
        params: the parameters to update.
        lr: the step size.
    """

    def __init__(self, params: Any, lr: float) -> None:
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:
        if closure is not None:
            with torch.enable_grad():
                closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    param -= group["lr"] * param.grad
                    param.grad = None


class FullBatchGD(pl.LightningModule):
    """Base of both exercises' modules: manual optimisation, ``batch["steps"]`` plain gradient steps per training
    step (one if the batch does not say), losses recorded.

    Subclasses draw their parameters for each of ``self.seeds``, implement :meth:`member_losses`, and
    ``configure_optimizers`` (a :class:`PlainGradientStep`).
    """

    def __init__(self, seeds: Sequence[int] | None) -> None:
        super().__init__()
        self.seeds = resolve_seeds(seeds)
        self.automatic_optimization = False  # plain steps, as many per batch as it says, without Lightning's closures
        self.history: dict[str, tuple[list[int], list[torch.Tensor]]] = {}
        self.final_loss: torch.Tensor | None = None
        self.member_loggers: MemberLoggers | None = None
        self._epoch_losses: torch.Tensor | None = None
        self._pending = 0
        self._logged_through: int | None = None  # a restored checkpoint's last step the loggers had

    def __setattr__(self, name: str, value: Any) -> None:
        """``nn.Module.__setattr__``, with a shortcut for plain values of plain attributes.

        Lightning sets such attributes around every hook it calls (the running hook's name, ...), some thirty times
        per training step, and ``nn.Module.__setattr__`` checks each value against parameters, modules and
        buffers: on the lab's tiny steps that was a tenth of Lightning's cost per step. An attribute already in
        ``__dict__`` is none of those, so storing it directly is what ``nn.Module`` would end up doing too.
        """
        if name in self.__dict__ and type(value) in _PLAIN:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    @property
    def n_members(self) -> int:
        return len(self.seeds)

    def member_names(self) -> list[str]:
        """Each member's name, also its TensorBoard folder when there are several."""
        return [f"seed_{seed}" for seed in self.seeds]

    def member_losses(self, batch: dict[str, Any]) -> torch.Tensor:
        """This rank's share of each member's loss on ``batch``: a tensor of shape (members,)."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------- the step

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """The batch's plain gradient steps, each on the whole batch.

        Each step differentiates the sum of the members' losses, so one backward gives each member exactly its own
        gradient. Under DDP each rank holds a shard of the full batch and its loss is that shard's sum, while DDP
        *averages* gradients over ranks: weighting each loss by the world size makes the update the full-batch
        gradient, as on one device.
        """
        per_batch, done = batch.get("steps", 1), self.trainer.global_step
        # Up to the next multiple of it: a run resumed off the batches' grid (from a checkpoint written with other
        # settings) gets back on it, where the checkpoint intervals lie; and never past max_steps.
        steps = per_batch - done % per_batch
        if self.trainer.max_steps >= 0:
            steps = min(steps, self.trainer.max_steps - done)
        optimizer, weight = self.optimizers(), None
        for _ in range(steps):
            losses = self.member_losses(batch)
            self._record(losses.detach(), steps)
            if weight is None:  # d(sum of the losses, times the world size)/d(each loss)
                weight = torch.full_like(losses, self.trainer.world_size)
            self.manual_backward(losses, weight)
            optimizer.step()  # PlainGradientStep: it also clears the gradients

    def _record(self, losses: torch.Tensor, batch_steps: int) -> None:
        """Keep this step's per-member losses on the device until the next :meth:`_flush`."""
        if self._epoch_losses is None or self._pending == len(self._epoch_losses):
            # A row per step of the epoch. A resumed run can hold a batch more: Lightning replays the end of the
            # epoch it saved as one extra batch, hence the growing.
            shape = (self.trainer.num_training_batches * batch_steps, self.n_members)
            rows = torch.full(shape, math.nan, dtype=losses.dtype, device=losses.device)
            self._epoch_losses = rows if self._epoch_losses is None else torch.cat([self._epoch_losses, rows])
        self._epoch_losses[self._pending] = losses
        self._pending += 1

    def on_train_batch_end(self, outputs: Any, batch: dict[str, Any], batch_idx: int) -> None:
        trainer = self.trainer
        # The end of an epoch, or a stop inside one: max_steps reached, or a callback asked the Trainer to stop.
        # (A stop at an epoch's end, by max_epochs or EarlyStopping, is decided after this hook: every epoch's end
        # measures its weights, so the last one's are measured whatever ends the fit.)
        stop = 0 <= trainer.max_steps <= trainer.global_step or trainer.should_stop
        if batch_idx + 1 >= trainer.num_training_batches or stop:
            self._flush(final_batch=batch)

    def _flush(self, final_batch: dict[str, Any]) -> None:
        """Copy the recorded losses to the host (one sync), stop at the first non-finite one, log every step.

        Also measure the current weights on ``final_batch`` (one forward pass per epoch, less than a step): once the
        fit ends, the loss "at the end of training".
        """
        chunk = self._epoch_losses[: self._pending]
        with torch.no_grad():
            chunk = torch.cat([chunk, self.member_losses(final_batch).detach()[None].to(chunk.dtype)])
        chunk = self._on_host(chunk)
        self._epoch_losses, self._pending = None, 0
        chunk, self.final_loss = chunk[:-1], chunk[-1]
        last = self.trainer.global_step
        steps = list(range(last - len(chunk) + 1, last + 1))
        bad = ~torch.isfinite(chunk)
        if bad.any():
            t, b = (int(i) for i in bad.nonzero()[0])
            lr = self.optimizers().param_groups[0]["lr"]
            raise DivergenceError(
                f"training diverged at step {steps[t]}: {self.member_names()[b]}'s loss is {float(chunk[t, b])} "
                f"with lr {lr}; lower model.lr (or normalise the data) and run again"
            )
        if not torch.isfinite(self.final_loss).all():
            b = int((~torch.isfinite(self.final_loss)).nonzero()[0])
            raise DivergenceError(
                f"training diverged: {self.member_names()[b]}'s loss is {float(self.final_loss[b])} after step {last}; "
                "lower model.lr"
            )
        self.add_history("train/loss", steps, chunk)
        self.log("train/loss", chunk[-1].mean().item(), prog_bar=True, logger=False)

    def add_history(self, tag: str, steps: list[int], values: torch.Tensor) -> None:
        """Keep ``values`` (steps x members, CPU) as points of ``tag``'s curve and write them to the loggers."""
        kept_steps, kept_values = self.history.setdefault(tag, ([], []))
        kept_steps.extend(steps)
        kept_values.append(values)
        if self.member_loggers is not None:
            self.member_loggers.scalars(tag, steps, values)

    def curve(self, tag: str, member: int = 0) -> dict[str, list[float]]:
        """``{"step": [...], "value": [...]}`` of one member's curve (as the report plots it)."""
        steps, values = self.history.get(tag, ([], []))
        column = torch.cat(values)[:, member].double().tolist() if values else []
        return {"step": list(steps), "value": column}

    # ------------------------------------------------------------------------------------------- lifecycle

    def on_fit_start(self) -> None:
        self.member_loggers = MemberLoggers(self.trainer, self.member_names())

    def on_train_start(self) -> None:
        # After the checkpoint (if any) is restored: a continued run's first step is the one after it, or the first
        # one the loggers never got (a checkpoint written inside an epoch), which are written again from there.
        if self.member_loggers is not None:
            done = self.trainer.global_step
            first = (self._logged_through if self._logged_through is not None else done) + 1
            self.member_loggers.start(first)
            for tag, (steps, values) in self.history.items():
                kept = [i for i, step in enumerate(steps) if step >= first]
                if kept:
                    self.member_loggers.scalars(tag, [steps[i] for i in kept], torch.cat(values)[kept])
        self._logged_through = None

    def on_train_end(self) -> None:
        if self.member_loggers is not None:
            self.member_loggers.flush()

    def teardown(self, stage: str) -> None:
        if self.member_loggers is not None:
            self.member_loggers.close()
        self._epoch_losses, self._pending = None, 0

    def _on_host(self, losses: torch.Tensor) -> torch.Tensor:
        """Recorded losses summed over the DDP ranks (each holds a shard of the rows: every rank must call this),
        on the host."""
        if self.trainer.world_size > 1:
            losses = self.trainer.strategy.reduce(losses, reduce_op="sum")
        return losses.cpu()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the curves with the weights, so a resumed run reports every step from the first.

        A checkpoint every N steps can land inside an epoch, before the epoch's losses are written: they go into it
        too, with ``logged_through``, the last step the loggers had, from which a continued run writes them again.
        """
        history = {tag: (list(steps), torch.cat(values)) for tag, (steps, values) in self.history.items()}
        done = self.trainer.global_step
        if self._pending:  # every rank saves the checkpoint's state, so every rank takes part in the sum
            pending = self._on_host(self._epoch_losses[: self._pending])
            steps, values = history.get("train/loss", ([], pending[:0]))
            new_steps = range(done - self._pending + 1, done + 1)
            history["train/loss"] = (steps + list(new_steps), torch.cat([values, pending]))
        checkpoint["history"] = history
        checkpoint["logged_through"] = done - self._pending

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        adopt_checkpoint_dtype(self, checkpoint)
        self.history = {tag: (list(steps), [values]) for tag, (steps, values) in checkpoint.get("history", {}).items()}
        self._logged_through = checkpoint.get("logged_through")  # None: written before it was recorded
