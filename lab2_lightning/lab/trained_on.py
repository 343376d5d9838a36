"""What an MLP checkpoint was trained on, to refuse ``validate`` on data its weights would misread.

``validate`` measures a checkpoint's weights on the data of the command's own settings. Where those data differ
from the training's in what the weights depend on, every accuracy is wrong without a sign of it: another number or
order of classes or feature columns, features normalised with other statistics, or "validation" rows that the
weights were trained on. Checked before the Trainer is built, so a refused command leaves no run folder behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from lab2_lightning.data.datamodule import IrisDataModule, recorded_data
from lab2_lightning.utils.errors import LabError

_FIX = "validate with its run's config.yaml"


@dataclass(frozen=True)
class TrainedOn:
    """The training data's traits an MLP checkpoint records (``None``: not recorded, not checked).

    Args:
        n_features: the model's inputs.
        n_classes: the model's outputs.
        class_names: the classes, in the order of the model's outputs.
        feature_names: the feature columns, in the order of the model's inputs (``None``: by position).
        shift: the features' statistics, ``(x - shift) / scale``, as the checkpoint holds them (in its dtype).
        scale: see ``shift``.
        sha256: the data file's (``None`` for a synthetic matrix).
        stats_rows: the rows the statistics came from, ``all`` or ``train``.
        val_size: the rows held out for validation, the last ``val_size`` of the permutation ``split_seed`` draws.
        split_seed: see ``val_size``.
    """

    n_features: int
    n_classes: int
    class_names: list[str] | None
    feature_names: list[str] | None
    shift: torch.Tensor
    scale: torch.Tensor
    sha256: str | None
    stats_rows: str | None
    val_size: int | None
    split_seed: int | None

    @classmethod
    def from_checkpoint(cls, checkpoint: dict[str, Any]) -> TrainedOn:
        """From an MLP checkpoint (:func:`~lab2_lightning.models.checkpoints.load_checkpoint`'s)."""
        weights, model = checkpoint["state_dict"], checkpoint["hyper_parameters"]
        data = checkpoint.get("datamodule_hyper_parameters") or {}  # absent: trained without a DataModule
        return cls(
            n_features=weights["W1"].shape[-2],
            n_classes=weights["W2"].shape[-1],
            class_names=model.get("class_names"),
            feature_names=model.get("feature_names"),
            shift=weights["input_shift"].cpu(),
            scale=weights["input_scale"].cpu(),
            sha256=(recorded_data(checkpoint) or {}).get("sha256"),
            stats_rows=data.get("stats_rows"),
            val_size=data.get("val_size"),
            split_seed=data.get("split_seed"),
        )

    def check(self, data: IrisDataModule, checkpoint: str) -> None:
        """Refuse, in one line naming the difference, to measure ``checkpoint``'s weights on ``data``."""
        if (data.n_features, data.n_classes) != (self.n_features, self.n_classes):
            raise LabError(
                f"{checkpoint} takes {self.n_features} features and tells apart {self.n_classes} classes; "
                f"{data.source} has {data.n_features} and {data.n_classes}: validate on the data it was trained on"
            )
        if self.class_names is not None and list(data.class_names) != list(self.class_names):
            raise LabError(
                f"{checkpoint} tells apart {', '.join(self.class_names)} (in this order); the labels of "
                f"{data.source} are {', '.join(data.class_names)}: validate on data labelled as in its training"
            )
        named = self.feature_names is not None and data.feature_names is not None  # else: columns by position
        if named and list(data.feature_names) != list(self.feature_names):
            raise LabError(
                f"{checkpoint} was trained on the columns {', '.join(self.feature_names)}; {data.source} has "
                f"{', '.join(data.feature_names)}: validate needs the same columns in the same order (predict "
                "matches them by name)"
            )
        self._check_rows(data, checkpoint)
        # The fit copied the data's statistics into the checkpoint's dtype: the same rounding, the same numbers.
        if not (
            torch.equal(data.shift.to(self.shift), self.shift) and torch.equal(data.scale.to(self.scale), self.scale)
        ):
            raise LabError(
                f"{checkpoint} was trained on features normalised with other statistics than those of "
                f"{data.source} with data.preprocessing {data.hparams.preprocessing} and data.stats_rows "
                f"{data.hparams.stats_rows} (or on other rows, or columns in another order): {_FIX}, or classify new "
                "measurements with predict"
            )

    def _check_rows(self, data: IrisDataModule, checkpoint: str) -> None:
        """The split: validation rows must be rows the training held out, and statistics of the training rows
        must come from the same rows. Only on the same file (by its bytes): of another, even a copy with a header or
        other line ends, no row is told from the training's, so this check does not apply there."""
        if self.val_size is None or self.split_seed is None or self.sha256 != data.identity["sha256"]:
            return
        val_size, split_seed = data.hparams.val_size, data.hparams.split_seed
        split, trained = split_of(val_size, split_seed), split_of(self.val_size, self.split_seed)
        if data.hparams.stats_rows == "train" and split != trained:
            raise LabError(
                f"with data.stats_rows train, the features are normalised with the training rows' statistics: "
                f"validate {checkpoint} on the split of its training, {trained} (here {split})"
            )
        # The held-out rows are the permutation's last val_size: the same seed and a smaller val_size keep a subset.
        if val_size and (split_seed != self.split_seed or val_size > self.val_size):
            every_row = ", or data.val_size 0 to measure every row as one split" if self.stats_rows == "all" else ""
            raise LabError(
                f"{split} holds out rows that {checkpoint} was trained on (it held out "
                f"{trained if self.val_size else 'no rows'}): its validation accuracy would count them; "
                f"{_FIX}{every_row}"
            )


def split_of(val_size: int, split_seed: int) -> str:
    """A split's settings as the options name them; the seed only where it draws held-out rows."""
    return f"data.val_size {val_size} with data.split_seed {split_seed}" if val_size else "data.val_size 0"
