"""What both exercises share: the lab's plain gradient step, and one copy of the model per seed, trained together.

The lab asks for each experiment to be repeated over seeds. A module holds one set of parameters per seed (a
*member*) and returns the sum of the members' losses: the gradient of a sum gives each member exactly its own
gradient, so ten seeds train in one run with the numbers of ten separate runs, bit for bit.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch

from lab2_lightning.errors import LabError


class PlainGradientStep(torch.optim.Optimizer):
    """The lab's update ``p -= lr * p.grad``, as the lab writes it. ``torch.optim.SGD`` computes
    ``p + (-lr) * grad`` in one fused operation, which rounds once less: its weights drift from the lab's loop in the
    last bits."""

    def __init__(self, params: Any, lr: float) -> None:
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        with torch.enable_grad():
            loss = closure() if closure is not None else None
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    param -= group["lr"] * param.grad
        return loss


class SeededModule(pl.LightningModule):
    """Members, their summed loss, and each step's per-member losses, kept as curves and checked for divergence.

    Subclasses draw each member's parameters from ``torch.Generator().manual_seed(seed)`` (what the lab's
    ``torch.manual_seed(seed)`` gives) and implement :meth:`member_losses`.
    """

    loss_name = "loss"  # what the loss is, as TensorBoard and the progress bar show it

    def __init__(self, seeds: list[int] | None, n_features: int) -> None:
        super().__init__()
        if seeds is not None and not seeds:
            raise LabError("model.seeds must name at least one seed, or be null for the run's seed_everything")
        # null: one member, seeded by the run's seed_everything, as the lab's single run is.
        self.seeds = list(seeds) if seeds is not None else [torch.initial_seed()]
        self.history = torch.empty(0, len(self.seeds))  # one row per gradient step: each member's loss
        # One point per validation: (step, {tag: a value per member}).
        self.val_history: list[tuple[int, dict[str, list[float]]]] = []
        self.shown: dict[str, float] = {}  # the latest validation's values on the progress bar
        # This epoch's rows, still on the device, in one tensor made at the epoch's start: a small tensor kept per
        # step would pin the freed memory around it (the heap cannot shrink past it), and a large matrix's run
        # would grow by a copy of the matrix per step.
        self._pending, self._filled = torch.empty(0), 0
        # The training data's normalisation, column by column, kept in the checkpoint: prediction takes raw
        # measurements to the model's scale, and estimates back to the data's.
        self.register_buffer("input_shift", torch.zeros(n_features))
        self.register_buffer("input_scale", torch.ones(n_features))

    def member_names(self) -> list[str]:
        return [f"seed_{seed}" for seed in self.seeds]

    def check_members(self) -> None:
        """Each member must be told apart (its TensorBoard run, its row of results): no seed twice."""
        names = self.member_names()
        if len(set(names)) < len(names):
            twice = next(name for name in names if names.count(name) > 1)
            raise LabError(f"model.seeds: {twice} is asked for twice; each member needs its own seed (and rank)")

    def member_losses(self, batch: dict[str, Any]) -> torch.Tensor:
        """Each member's loss on this process's rows: shape (members,)."""
        raise NotImplementedError

    def lr(self) -> float:
        return float(self.hparams.lr)

    def on_fit_start(self) -> None:
        data = self.trainer.datamodule
        self.input_shift.copy_(data.shift)
        self.input_scale.copy_(data.scale)

    def configure_optimizers(self) -> PlainGradientStep:
        return PlainGradientStep(self.parameters(), lr=self.lr())

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """One plain gradient step on the whole batch. Under DDP each process holds a share of the rows and DDP
        averages the gradients: multiplying the summed loss by the number of processes keeps the lab's full-batch
        gradient."""
        losses = self.member_losses(batch)
        trainer = self.trainer
        if batch_idx == 0 or self._filled == len(self._pending):
            self.collect_losses()
            self._pending = losses.new_empty(trainer.num_training_batches - batch_idx, len(losses))
        self._pending[self._filled] = losses.detach()
        self._filled += 1
        if batch_idx + 1 == trainer.num_training_batches or trainer.global_step + 1 == trainer.max_steps:
            self.collect_losses()  # once per epoch: one trip to the host, not one per step
            # For the progress bar and checkpoint monitors (the curves are MemberBoard's): the mean over members.
            self.log(self.loss_name, self.history[-1].mean().item(), prog_bar=True, logger=False)
        return losses.sum() * trainer.world_size

    def collect_losses(self) -> None:
        """Move the pending steps' losses (summed over the DDP processes) into :attr:`history`; stop at the first
        one that is not finite, naming its step and member."""
        if not self._filled:
            return
        pending, self._filled = self._pending[: self._filled], 0
        if self.trainer.world_size > 1:
            pending = self.trainer.strategy.reduce(pending, reduce_op="sum")
        pending = pending.cpu().double()
        for row in (~torch.isfinite(pending)).any(dim=1).nonzero().flatten()[:1].tolist():
            self.check_finite(pending[row], f"at step {len(self.history) + row + 1}")
        self.history = torch.cat([self.history, pending])

    @torch.no_grad()
    def final_losses(self) -> torch.Tensor:
        """Each member's loss with its current weights on all training rows, on the host. Every DDP process must
        call it (their shares are summed)."""
        losses = self.member_losses(next(iter(self.trainer.datamodule.train_dataloader())))
        if self.trainer.world_size > 1:
            losses = self.trainer.strategy.reduce(losses, reduce_op="sum")
        losses = losses.cpu().double()
        self.check_finite(losses, "after the last step")
        return losses

    def check_finite(self, losses: torch.Tensor, when: str, name: str | None = None) -> None:
        """Stop at the first member whose loss (``losses``: one per member; or another measure, ``name``) is not a
        finite number, naming it."""
        bad = (~torch.isfinite(losses)).nonzero().flatten()
        if len(bad):
            member = int(bad[0])
            raise LabError(
                f"training diverged {when}: {self.member_names()[member]}'s {name or self.loss_name} is "
                f"{losses[member].item()} with lr {self.lr()}; lower model.lr (or normalise the data) and run again"
            )

    def show(self, name: str, value: float) -> None:
        """``value`` on the progress bar and for checkpoint monitors (the curves are MemberBoard's), from a
        validation that Lightning runs; not from :meth:`validate_final_weights`, where Lightning takes no logs."""
        if self.trainer.validating:
            self.shown[name] = value
            self.log(name, value, prog_bar=True, logger=False)

    def on_train_epoch_end(self) -> None:
        """A run resumed from a checkpoint written at an epoch's end ends that epoch again, before any validation:
        the monitors (early stopping, a watched checkpoint) find the values they watch as the checkpoint had them."""
        for name, value in self.shown.items():
            if name not in self.trainer.callback_metrics:
                self.log(name, value, prog_bar=True, logger=False)

    def on_train_end(self) -> None:
        self.collect_losses()  # a fit stopped inside an epoch (max_time)
        measured = self.val_history[-1][0] if self.val_history else 0
        if measured != self.trainer.global_step:
            self.validate_final_weights()

    @torch.no_grad()
    def validate_final_weights(self) -> None:
        """Validation once more, of the final weights, where the last one came before the last step, or none ran
        (``val_check_interval``, ``check_val_every_n_epoch``, ``limit_val_batches``, ``max_time``): a run's results
        are always its final weights' numbers."""
        self.on_validation_start()
        for dataloader_idx, loader in enumerate(self.trainer.datamodule.val_dataloader()):
            for batch in loader:
                self.validation_step(batch, 0, dataloader_idx)
        self.on_validation_epoch_end()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """The curves travel with the weights, so a resumed run reports every step from the first."""
        self.collect_losses()
        checkpoint["loss_history"], checkpoint["val_history"] = self.history, self.val_history
        checkpoint["shown"] = self.shown

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Lightning loads the weights before it converts the module to the Trainer's precision: take the
        # checkpoint's dtype first, or a float64 run would resume from weights rounded to float32.
        self.to(next(iter(checkpoint["state_dict"].values())).dtype)
        self.history, self.val_history = checkpoint["loss_history"], checkpoint.get("val_history", [])
        self.shown = checkpoint.get("shown", {})
