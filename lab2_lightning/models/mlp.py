"""Exercise 2: the lab's 4-12-3 MLP, trained by plain full-batch gradient steps, one member per seed."""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from jsonargparse.typing import PositiveFloat, PositiveInt
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.aggregation import SumMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from lab2_lightning.data.reading import align_columns
from lab2_lightning.errors import LabError
from lab2_lightning.models.seeded import SeededModule

SPLITS = ("train", "val")  # the validation loop's loaders: the training split, then the validation split


class LabMLP(SeededModule):
    """The lab's ``logits = relu(x @ W1 + b1) @ W2 + b2``; each training step is one of the lab's epochs.

    The lab's loop, and where each line went::

        W1 = torch.randn(4, 12); W2 = torch.randn(12, 3)      # __init__, per member, after manual_seed(seed)
        b1 = torch.tensor(0.0); b2 = torch.tensor(0.0)        # scalar biases: bias="scalar"
        loss = cross_entropy(forward(x), y, reduction="sum")  # member_losses
        loss.backward(); p -= lr * p.grad                     # Lightning, and PlainGradientStep

    After every Lightning epoch the validation loop measures the weights on both splits with torchmetrics
    (per-class and overall accuracy, the confusion matrix, the summed cross-entropy), so the last numbers are those
    of the final weights.

    Args:
        n_features: input features (linked from the data).
        n_classes: classes (linked from the data).
        class_names: the classes' names (linked from the data).
        feature_names: the training file's feature columns (linked from the data), by which prediction matches a
            new file's columns.
        hidden: hidden units (the lab's 12).
        lr: the step size (the lab's 0.01).
        bias: ``scalar``: b1 and b2 are single numbers, 0 at the start (the lab's choice); ``per_unit``: one per
            hidden unit and per class, the usual layer.
        reduction: the cross-entropy over rows: ``sum`` (the lab's code) or ``mean`` (the lab sheet's words; its
            steps are 100 times smaller at the same lr).
        seeds: one member per seed; ``null``: one member, seeded by ``seed_everything``.
    """

    loss_name = "cross_entropy"

    def __init__(
        self,
        n_features: int = 4,
        n_classes: int = 3,
        class_names: list[str] | None = None,
        feature_names: list[str] | None = None,
        hidden: PositiveInt = 12,
        lr: PositiveFloat = 0.01,
        bias: Literal["scalar", "per_unit"] = "scalar",
        reduction: Literal["sum", "mean"] = "sum",
        seeds: list[int] | None = None,
    ) -> None:
        super().__init__(seeds, n_features)
        self.save_hyperparameters(logger=False)
        if n_classes < 2:
            raise LabError(f"the MLP needs at least two classes, got {n_classes}: check data.label_column")
        self.class_names = class_names or [str(k) for k in range(n_classes)]
        self.check_members()
        self.W1, self.W2, self.b1, self.b2 = (nn.ParameterList() for _ in range(4))
        for seed in self.seeds:
            draws = torch.Generator().manual_seed(seed)
            self.W1.append(torch.randn(n_features, hidden, generator=draws))
            self.W2.append(torch.randn(hidden, n_classes, generator=draws))
            self.b1.append(torch.zeros(hidden) if bias == "per_unit" else torch.tensor(0.0))
            self.b2.append(torch.zeros(n_classes) if bias == "per_unit" else torch.tensor(0.0))

        def split_metrics() -> MetricCollection:
            return MetricCollection(
                {
                    "acc": MulticlassAccuracy(n_classes, average="micro"),
                    "acc_per_class": MulticlassAccuracy(n_classes, average=None),
                    "confusion": MulticlassConfusionMatrix(n_classes),
                }
            )

        # [split][member]; a ModuleDict cannot have the key "train" (nn.Module.train exists).
        self.metrics = nn.ModuleList(nn.ModuleList(split_metrics() for _ in self.seeds) for _ in SPLITS)
        # nan_strategy "disable": a NaN loss stays NaN, for the divergence check, instead of being dropped
        self.split_losses = nn.ModuleList(
            nn.ModuleList(SumMetric(nan_strategy="disable") for _ in self.seeds) for _ in SPLITS
        )
        self.final: dict[str, list[dict[str, Any]]] = {}  # the latest validation's numbers, per split and member

    def logits(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each member's logits for normalised features ``x``."""
        return [
            torch.relu(x @ W1 + b1) @ W2 + b2 for W1, W2, b1, b2 in zip(self.W1, self.W2, self.b1, self.b2, strict=True)
        ]

    def member_losses(self, batch: dict[str, Any]) -> torch.Tensor:
        losses = torch.stack([F.cross_entropy(z, batch["y"], reduction="sum") for z in self.logits(batch["x"])])
        # The mean over the whole split, also when this process holds a share of its rows.
        return losses / batch["split_rows"] if self.hparams.reduction == "mean" else losses

    def setup(self, stage: str) -> None:
        data = self.trainer.datamodule
        if data.missing or data.val_x.isnan().any():  # before the fit's first output
            raise LabError(
                "the MLP needs every feature of every row: data.allow_missing and data.holdout are for the "
                "factorisation"
            )

    def validation_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        for member, logits in enumerate(self.logits(batch["x"])):
            self.metrics[dataloader_idx][member].update(logits, batch["y"])
            self.split_losses[dataloader_idx][member].update(F.cross_entropy(logits, batch["y"], reduction="sum"))

    def on_validation_epoch_end(self) -> None:
        """Each split's numbers over all processes (torchmetrics syncs them), kept as the latest final ones."""
        step, points = self.trainer.global_step, {}
        for split, metrics, losses in zip(SPLITS, self.metrics, self.split_losses, strict=False):
            if not losses[0].update_called:
                continue
            runs = []
            for metric, loss in zip(metrics, losses, strict=True):
                computed = metric.compute()
                counts = computed["confusion"].sum(dim=1)
                runs.append(
                    {
                        "loss": loss.compute().item() / (int(counts.sum()) if self.hparams.reduction == "mean" else 1),
                        "acc": computed["acc"].item(),
                        # a class without rows in this split has no accuracy: null, not torchmetrics' 0
                        "acc_per_class": {
                            name: computed["acc_per_class"][k].item() if counts[k] else None
                            for k, name in enumerate(self.class_names)
                        },
                        "class_counts": dict(zip(self.class_names, counts.tolist(), strict=True)),
                        "confusion": computed["confusion"].tolist(),
                    }
                )
                metric.reset()
                loss.reset()
            if self.trainer.sanity_checking:
                continue
            self.check_finite(torch.tensor([run["loss"] for run in runs]), f"by step {step} ({split} split)")
            self.final[split] = runs
            if split == "val":  # the training split's loss is already a curve, at every step (before its update)
                points[f"{self.loss_name}/val"] = [run["loss"] for run in runs]
            points[f"accuracy/{split}"] = [run["acc"] for run in runs]
            for name in self.class_names:
                if runs[0]["acc_per_class"][name] is not None:
                    points[f"accuracy/{split}_{name}"] = [run["acc_per_class"][name] for run in runs]
            # The mean over members, for the progress bar and checkpoint monitors.
            self.show(f"{split}_acc", sum(points[f"accuracy/{split}"]) / len(runs))
        if points:
            self.val_history.append((step, points))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["final"] = self.final

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self.final = checkpoint["final"]

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """Class probabilities (members x rows x classes) for raw measurements: the columns put in the training
        file's order (by name when both have a header), then normalised as the training data were."""
        x = align_columns(
            batch["x"], batch["columns"], self.hparams.feature_names, self.hparams.n_features, batch["source"]
        )
        x = ((x.to(self.input_shift) - self.input_shift) / self.input_scale).to(self.W1[0])
        probabilities = torch.stack([torch.softmax(z, dim=-1) for z in self.logits(x)])
        bad = (~torch.isfinite(probabilities)).any(dim=(0, 2)).nonzero().flatten()
        if len(bad):
            line = batch["line"][int(bad[0])]
            raise LabError(f"{batch['source']}, line {line}: a value too large for the model's {x.dtype}")
        return probabilities

    def prediction_table(self, batch: dict[str, Any], probabilities: torch.Tensor) -> tuple[list[str], list[list]]:
        """Per seed and input row: its line, the predicted class, each class's probability."""
        several = len(self.seeds) > 1
        header = [*(["seed"] if several else []), "line", "predicted", *(f"p_{n}" for n in self.class_names)]
        rows = [
            [*([seed] if several else []), line, self.class_names[int(p.argmax())], *(f"{v:.6f}" for v in p.tolist())]
            for seed, member in zip(self.seeds, probabilities, strict=True)
            for line, p in zip(batch["line"].tolist(), member, strict=True)
        ]
        return header, rows

    def member_results(self) -> list[dict[str, Any]]:
        """Each member's settings and, per split, the numbers of its final weights."""
        settings = {key: self.hparams[key] for key in ("hidden", "lr", "bias", "reduction")}
        return [
            {"seed": seed, **settings, "steps": self.trainer.global_step, "class_names": self.class_names}
            | {split: runs[member] for split, runs in self.final.items()}
            for member, seed in enumerate(self.seeds)
        ]
