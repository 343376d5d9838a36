"""Classification counts of several members at once, as one torchmetrics ``Metric``.

torchmetrics' ``MulticlassAccuracy`` and ``MulticlassConfusionMatrix`` count one model's predictions; the members
of a batched MLP would need one metric object each, and as many updates and syncs. This metric keeps one confusion
matrix per member (members x classes x classes) and each member's summed cross-entropy, summed over ranks under
DDP like any torchmetrics state. Per-class accuracy is its diagonal over its row sums: what
``MulticlassAccuracy(average=None)`` computes (the tests check it against torchmetrics, member by member).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics import Metric


class MemberConfusion(Metric):
    """Per-member confusion matrices (rows: true class, columns: predicted) and summed cross-entropy.

    Args:
        n_members: leading dimension of the logits.
        n_classes: classes.
    """

    full_state_update = False

    def __init__(self, n_members: int, n_classes: int) -> None:
        super().__init__()
        self.n_members, self.n_classes = n_members, n_classes
        self.add_state("confusion", torch.zeros(n_members, n_classes, n_classes, dtype=torch.long), "sum")
        self.add_state("loss_sum", torch.zeros(n_members, dtype=torch.float64), "sum")

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        """``logits``: members x rows x classes; ``target``: rows (class ids)."""
        members, rows, classes = logits.shape
        predicted = logits.argmax(dim=-1)
        member = torch.arange(members, device=logits.device)[:, None]
        cells = (member * classes + target[None]) * classes + predicted
        self.confusion += torch.bincount(cells.flatten(), minlength=members * classes * classes).view_as(self.confusion)
        losses = F.cross_entropy(logits.flatten(0, 1), target.repeat(members), reduction="none")
        self.loss_sum += losses.view(members, rows).sum(dim=1).double()

    def compute(self) -> dict[str, torch.Tensor]:
        """``confusion`` (members x C x C), ``rows_per_class`` (C), ``acc`` (members), ``acc_per_class`` (members x C,
        NaN for a class without rows) and ``loss_sum`` (members).

        torchmetrics squeezes one-element results to scalars; :meth:`shaped` restores the member dimension."""
        confusion = self.confusion
        per_class_rows = confusion.sum(dim=-1)
        correct = confusion.diagonal(dim1=-2, dim2=-1)
        return {
            "confusion": confusion,
            "rows_per_class": per_class_rows[0],
            "acc": correct.sum(-1).double() / per_class_rows.sum(-1).clamp(min=1),
            "acc_per_class": correct.double() / per_class_rows.double(),
            "loss_sum": self.loss_sum,
        }

    def shaped(self, computed: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """:meth:`compute`'s results with their member (and class) dimensions, also for one member."""
        members, classes = self.n_members, self.n_classes
        shapes = {
            "confusion": (members, classes, classes),
            "rows_per_class": (classes,),
            "acc": (members,),
            "acc_per_class": (members, classes),
            "loss_sum": (members,),
        }
        return {key: value.reshape(shapes[key]) for key, value in computed.items()}
