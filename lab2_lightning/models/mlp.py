"""Exercise 2 as a LightningModule: the lab's one-hidden-layer MLP, for several seeds at once."""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from lab2_lightning.data.table import align_columns
from lab2_lightning.models.full_batch import FullBatchGD, PlainGradientStep, check_lr, generator
from lab2_lightning.models.metrics import MemberConfusion
from lab2_lightning.utils.errors import LabError

SPLITS = ("train", "val")


class LabMLP(FullBatchGD):
    """``logits = relu(x @ W1 + b1) @ W2 + b2``, trained by plain gradient steps on the full batch.

    Each step is one plain gradient step on all training rows: the lab's "epoch". The members' weights
    are stacked: W1 is (members x features x hidden), W2 (members x hidden x classes).

    Seed contract: member b's W1 and W2 are ``torch.randn(features, hidden)`` and then
    ``torch.randn(hidden, classes)`` after ``torch.manual_seed(seeds[b])``, as in the lab's ``sgd_mlp``
    (:mod:`lab2_lightning.models.reference`).

    After every Lightning epoch (``data.steps_per_epoch`` steps), the validation loop measures the current
    weights on both splits (the DataModule serves the training split as validation loader 0), so the last
    numbers are those of the final weights, as the lab computes them "at the end of training".

    Args:
        n_features: input features (linked from the data by the CLI).
        n_classes: classes, at least two (linked from the data by the CLI).
        hidden: units in the hidden layer (the lab's 12).
        lr: learning rate of the plain gradient step (the lab's 0.01).
        bias: ``scalar`` -- one number each for b1 and b2, initialised to 0, the lab's choice -- or
            ``per_unit``, one bias per hidden unit and per class, the usual layer.
        reduction: cross-entropy reduction: ``sum`` (the lab's code) or ``mean`` (the lab sheet's wording).
            With ``sum`` the gradient grows with the batch, so the same lr takes larger steps.
        class_names: names of the classes, for metric tags and reports (linked from the data by the CLI).
        feature_names: the training file's feature columns (its header; null: by position), kept in the checkpoint
            so that prediction matches a new file's columns by name (linked from the data by the CLI).
        seeds: one seed per member; ``null``: one member, seeded by the run's ``seed_everything``.
    """

    def __init__(
        self,
        n_features: int = 4,
        n_classes: int = 3,
        hidden: int = 12,
        lr: float = 0.01,
        bias: Literal["scalar", "per_unit"] = "scalar",
        reduction: Literal["sum", "mean"] = "sum",
        class_names: list[str] | None = None,
        feature_names: list[str] | None = None,
        seeds: list[int] | None = None,
    ) -> None:
        super().__init__(seeds)
        if n_classes < 2:
            raise LabError(
                f"the MLP needs labelled data with at least two classes, got {n_classes}; "
                "check data.label_column and the file's labels"
            )
        if hidden < 1:
            raise LabError(f"model.hidden must be at least 1, got {hidden}")
        check_lr(lr)
        if class_names is not None and len(class_names) != n_classes:
            raise LabError(f"{len(class_names)} class names given for {n_classes} classes")
        if feature_names is not None and len(feature_names) != n_features:
            raise LabError(f"{len(feature_names)} feature names given for {n_features} features")
        self.save_hyperparameters(logger=False)
        self.hparams["seeds"] = self.seeds  # the seeds actually drawn, for a checkpoint to rebuild the same members
        self.class_names = list(class_names) if class_names is not None else [str(k) for k in range(n_classes)]

        members = self.n_members
        self.W1 = nn.Parameter(torch.empty(members, n_features, hidden))
        self.W2 = nn.Parameter(torch.empty(members, hidden, n_classes))
        with torch.no_grad():
            for b, seed in enumerate(self.seeds):
                draws = generator(seed)
                self.W1[b] = torch.randn(n_features, hidden, generator=draws)
                self.W2[b] = torch.randn(hidden, n_classes, generator=draws)
        per_unit = bias == "per_unit"
        self.b1 = nn.Parameter(torch.zeros(members, 1, hidden if per_unit else 1))
        self.b2 = nn.Parameter(torch.zeros(members, 1, n_classes if per_unit else 1))
        # The training data's preprocessing, saved with the checkpoint so prediction reuses it.
        self.register_buffer("input_shift", torch.zeros(n_features))
        self.register_buffer("input_scale", torch.ones(n_features))

        # One per split, in the order of SPLITS (a ModuleDict cannot have a key "train": nn.Module.train exists).
        self.split_metrics = nn.ModuleList([MemberConfusion(members, n_classes) for _ in SPLITS])
        self.final: dict[str, dict[str, torch.Tensor]] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Each member's logits for preprocessed features ``x`` (rows x features): members x rows x classes."""
        return torch.relu(x @ self.W1 + self.b1) @ self.W2 + self.b2

    def on_fit_start(self) -> None:
        super().on_fit_start()
        data = self.trainer.datamodule
        if data is not None and hasattr(data, "shift"):
            self.input_shift.copy_(data.shift)
            self.input_scale.copy_(data.scale)

    def member_losses(self, batch: dict[str, Any]) -> torch.Tensor:
        """Each member's cross-entropy on this rank's rows: summed, or the whole split's mean."""
        x = batch["x"].to(self.W1.dtype)
        if self.n_members == 1:
            # The lab's own 2-D expression: on Iris, cheaper than the batched products below.
            W1, W2, b1, b2 = (p.squeeze(0) for p in (self.W1, self.W2, self.b1, self.b2))
            logits = torch.relu(x @ W1 + b1) @ W2 + b2
            losses = F.cross_entropy(logits, batch["y"], reduction="sum")[None]
        else:
            logits = self(x)
            members, rows, _ = logits.shape
            losses = F.cross_entropy(logits.flatten(0, 1), batch["y"].repeat(members), reduction="none")
            losses = losses.view(members, rows).sum(dim=1)
        if self.hparams.reduction == "mean":
            losses = losses / batch["split_rows"]  # the whole split's mean, also when this rank holds a shard
        return losses

    def validation_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        self.split_metrics[dataloader_idx].update(self(batch["x"].to(self.W1.dtype)), batch["y"])

    def on_validation_epoch_end(self) -> None:
        """Each split's counts over all ranks: logged per member at this step, kept as the latest final numbers."""
        for split, metric in zip(SPLITS, self.split_metrics, strict=True):
            if not metric.update_called:
                continue
            final = {key: value.cpu() for key, value in metric.shaped(metric.compute()).items()}
            metric.reset()
            if self.hparams.reduction == "mean":
                final["loss"] = final["loss_sum"] / final["rows_per_class"].sum()
            else:
                final["loss"] = final["loss_sum"]
            if self.trainer.sanity_checking:  # the weights before training: not results
                continue
            self.final[split] = final
            step = [self.trainer.global_step]
            if split == "val":  # the training split's loss is already a curve: train/loss, at every step
                self.add_history("val/loss", step, final["loss"][None])
            self.add_history(f"{split}/acc", step, final["acc"][None])
            for k, name in enumerate(self.class_names):
                if final["rows_per_class"][k]:
                    self.add_history(f"{split}/acc_{name}", step, final["acc_per_class"][None, :, k])
            # For the progress bar and ModelCheckpoint's monitor: the mean over members.
            self.log(f"{split}/acc", final["acc"].mean().item(), logger=False, prog_bar=split == "val")
            self.log(f"{split}/loss", final["loss"].mean().item(), logger=False)

    def configure_optimizers(self) -> PlainGradientStep:
        return PlainGradientStep(self.parameters(), lr=self.hparams.lr)

    def member_results(self) -> list[dict[str, Any]]:
        """Each member's settings and the per-class and overall accuracy, loss and class counts of its final weights
        on each split."""
        runs = []
        for b, seed in enumerate(self.seeds):
            run: dict[str, Any] = {
                "seed": seed,
                "hidden": self.hparams.hidden,
                "lr": self.hparams.lr,
                "bias": self.hparams.bias,
                "reduction": self.hparams.reduction,
                "epochs": self.trainer.global_step if self._trainer is not None else None,
                "class_names": self.class_names,
            }
            for split, final in self.final.items():
                counts = final["rows_per_class"]
                run[split] = {
                    "loss": float(final["loss"][b]),
                    "acc": float(final["acc"][b]),
                    # A class with no rows in this split has no accuracy: null, never a made-up 0.
                    "acc_per_class": {
                        name: float(final["acc_per_class"][b, k]) if counts[k] else None
                        for k, name in enumerate(self.class_names)
                    },
                    "class_counts": dict(zip(self.class_names, counts.tolist(), strict=True)),
                    "rows": int(counts.sum()),
                    "confusion": final["confusion"][b].tolist(),
                }
            runs.append(run)
        return runs

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """Class probabilities (members x rows x classes) for raw measurements: the columns matched to the training
        file's (by name when both have a header), then normalised with the training data's statistics."""
        x = align_columns(
            batch["x"], batch.get("columns"), self.hparams.feature_names, self.hparams.n_features, batch.get("source")
        )
        x = (x.to(self.input_shift.dtype) - self.input_shift) / self.input_scale
        return torch.softmax(self(x.to(self.W1.dtype)), dim=-1)
