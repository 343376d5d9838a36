"""Exercise 2 as a LightningModule: the lab's one-hidden-layer MLP, with per-class accuracy from torchmetrics."""

from __future__ import annotations

from typing import Any, Literal

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import ClasswiseWrapper, MetricCollection
from torchmetrics.aggregation import SumMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from lab2_lightning.callbacks.figures import confusion_figure
from lab2_lightning.callbacks.tb_logging import log_figure
from lab2_lightning.data.datamodule import Batch
from lab2_lightning.models.checkpoints import adopt_checkpoint_dtype
from lab2_lightning.models.steps import check_lr, full_batch_loss, gradient_step, logging_step
from lab2_lightning.utils.errors import LabError

SPLITS = ("train", "val")


class SplitMetrics(nn.Module):
    """The torchmetrics of one split: overall and per-class accuracy, confusion matrix and summed loss.

    torchmetrics keeps the counts per rank and adds them up across ranks in ``compute``, so the numbers are
    those of the whole split under DDP too.
    """

    def __init__(self, split: str, class_names: list[str]) -> None:
        super().__init__()
        n_classes = len(class_names)
        self.split = split
        per_class = MulticlassAccuracy(n_classes, average=None)
        self.accuracy = MetricCollection(
            {
                "acc": MulticlassAccuracy(n_classes, average="micro"),
                "per_class": ClasswiseWrapper(per_class, labels=class_names, prefix="acc_"),
            },
            prefix=f"{split}/",
        )
        self.confusion = MulticlassConfusionMatrix(n_classes)
        self.loss_sum = SumMetric()

    def update(self, logits: torch.Tensor, y: torch.Tensor) -> None:
        self.accuracy.update(logits, y)
        self.confusion.update(logits, y)
        self.loss_sum.update(F.cross_entropy(logits, y, reduction="sum"))

    def compute_and_reset(self, reduction: str) -> dict[str, Any]:
        """``values`` (tag -> accuracy), ``confusion`` (CPU tensor) and ``loss`` under ``reduction``."""
        confusion = self.confusion.compute()
        total = self.loss_sum.compute()
        final = {
            "values": self.accuracy.compute(),
            "confusion": confusion.cpu(),
            "loss": total if reduction == "sum" else total / confusion.sum(),
        }
        for metric in (self.accuracy, self.confusion, self.loss_sum):
            metric.reset()
        return final


class LabMLP(pl.LightningModule):
    """``logits = relu(x @ W1 + b1) @ W2 + b2``, trained by plain gradient steps on the full batch.

    Every training step is one plain gradient step on all training rows: the lab's "epoch".

    Seed contract: after ``torch.manual_seed(S)``, W1 and W2 are ``torch.randn(features, hidden)`` and then
    ``torch.randn(hidden, classes)``, as in the lab's ``sgd_mlp`` (:mod:`lab2_lightning.models.reference`).

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
    ) -> None:
        super().__init__()
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
        self.save_hyperparameters()
        self.automatic_optimization = False  # one plain step per batch, without Lightning's closure machinery
        self.class_names = list(class_names) if class_names is not None else [str(k) for k in range(n_classes)]

        self.W1 = nn.Parameter(torch.randn(n_features, hidden))
        self.W2 = nn.Parameter(torch.randn(hidden, n_classes))
        per_unit = bias == "per_unit"
        self.b1 = nn.Parameter(torch.zeros(hidden if per_unit else ()))
        self.b2 = nn.Parameter(torch.zeros(n_classes if per_unit else ()))
        # The training data's preprocessing, saved with the checkpoint so prediction reuses it.
        self.register_buffer("input_shift", torch.zeros(n_features))
        self.register_buffer("input_scale", torch.ones(n_features))

        self.train_metrics = SplitMetrics("train", self.class_names)
        self.val_metrics = SplitMetrics("val", self.class_names)
        self.final: dict[str, dict[str, Any]] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the lab's network for preprocessed features ``x``."""
        return torch.relu(x @ self.W1 + self.b1) @ self.W2 + self.b2

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        adopt_checkpoint_dtype(self, checkpoint)

    def on_fit_start(self) -> None:
        data = self.trainer.datamodule
        if data is not None:
            self.input_shift.copy_(data.shift)
            self.input_scale.copy_(data.scale)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        loss = F.cross_entropy(self(batch["x"].to(self.W1.dtype)), batch["y"], reduction="sum")
        if self.hparams.reduction == "mean":
            loss = loss / batch["split_rows"]  # the whole split's mean, also when this rank holds a shard
        gradient_step(self, loss)
        if logging_step(self):
            self.log("train/loss", full_batch_loss(self, loss), prog_bar=True)
        return loss

    def _split_metrics(self) -> dict[str, SplitMetrics]:
        return {"train": self.train_metrics, "val": self.val_metrics}

    def validation_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        split = SPLITS[dataloader_idx]
        self._split_metrics()[split].update(self(batch["x"].to(self.W1.dtype)), batch["y"])

    def on_validation_epoch_end(self) -> None:
        """Compute each split's metrics over all ranks, log them, and keep them as the latest final numbers."""
        for split, metrics in self._split_metrics().items():
            if not metrics.confusion.update_called:
                continue
            final = metrics.compute_and_reset(self.hparams.reduction)
            logged = dict(final["values"])
            if split == "val":
                logged["val/loss"] = final["loss"]
            self.log_dict(logged, add_dataloader_idx=False)
            self.final[split] = final

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    def results(self) -> dict[str, Any]:
        """Per-class and overall accuracy, loss and class counts of the final weights on each split."""
        out: dict[str, Any] = {
            "hidden": self.hparams.hidden,
            "lr": self.hparams.lr,
            "bias": self.hparams.bias,
            "reduction": self.hparams.reduction,
            "epochs": self.trainer.global_step if self._trainer is not None else None,
            "class_names": self.class_names,
        }
        for split, final in self.final.items():
            confusion = final["confusion"]
            counts = confusion.sum(dim=1)
            out[split] = {
                "loss": float(final["loss"]),
                "acc": float(final["values"][f"{split}/acc"]),
                # A class with no rows in this split has no accuracy: null, never a made-up 0.
                "acc_per_class": {
                    name: float(final["values"][f"{split}/acc_{name}"]) if counts[k] else None
                    for k, name in enumerate(self.class_names)
                },
                "class_counts": dict(zip(self.class_names, counts.tolist(), strict=True)),
                "rows": int(counts.sum()),
                "confusion": confusion.tolist(),
            }
        return out

    def on_train_end(self) -> None:
        """Log the final confusion matrices as figures."""
        if not (self.trainer.is_global_zero and self.trainer.loggers):
            return
        for split, final in self.final.items():
            title = f"{'Training' if split == 'train' else 'Validation'} confusion matrix"
            figure = confusion_figure(final["confusion"].numpy(), self.class_names, title)
            log_figure(self.trainer, f"{split}/confusion_matrix", figure)
