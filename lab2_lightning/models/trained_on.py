"""What an MLP checkpoint was trained on, to refuse measuring it on data it would misread.

``validate`` measures a checkpoint's weights on the data of the command's own settings. Where those data differ
from the training's in what the weights depend on, every accuracy is wrong without a sign of it: classes numbered
in another order, feature columns in another order, features normalised with other statistics, or "validation"
rows that the weights were trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from lab2_lightning.utils.errors import LabError

_FIX = "validate with its run's config.yaml"


@dataclass(frozen=True)
class TrainedOn:
    """The training data's traits a checkpoint records (``None``: not recorded, not checked).

    Args:
        shift: the features' statistics, ``(x - shift) / scale``, as the checkpoint holds them (dtype, device).
        scale: see ``shift``.
        class_names: the classes, in the order of the model's outputs.
        feature_names: the feature columns, in the order of the model's inputs (``None``: by position).
        val_size: the rows held out for validation, the last ``val_size`` of the permutation ``split_seed`` draws.
        split_seed: see ``val_size``.
    """

    shift: torch.Tensor
    scale: torch.Tensor
    class_names: list[str] | None
    feature_names: list[str] | None
    val_size: int | None
    split_seed: int | None

    @classmethod
    def from_checkpoint(cls, checkpoint: dict[str, Any]) -> TrainedOn:
        weights, model = checkpoint["state_dict"], checkpoint.get("hyper_parameters", {})
        data = checkpoint.get("datamodule_hyper_parameters") or {}
        return cls(
            shift=weights["input_shift"],
            scale=weights["input_scale"],
            class_names=model.get("class_names"),
            feature_names=model.get("feature_names"),
            val_size=data.get("val_size"),
            split_seed=data.get("split_seed"),
        )

    def check(self, data: Any, checkpoint: str) -> None:
        """Refuse, in one line naming the difference, to measure ``checkpoint``'s weights on ``data`` (an
        :class:`~lab2_lightning.data.datamodule.IrisDataModule`) where it would misread them."""
        if self.class_names is not None and list(data.class_names) != list(self.class_names):
            raise LabError(
                f"{checkpoint} tells apart {', '.join(self.class_names)} (in this order); the labels of "
                f"{data.source} are {', '.join(data.class_names)}: validate on data labelled as in its training"
            )
        named = self.feature_names is not None and data.feature_names is not None  # else: columns by position
        if named and list(data.feature_names) != list(self.feature_names):
            raise LabError(
                f"{checkpoint} was trained on the columns {', '.join(self.feature_names)} in this order; "
                f"{data.source} has {', '.join(data.feature_names)}: validate needs the same order (predict "
                "matches columns by name)"
            )
        # The fit copied the data's statistics into the checkpoint's dtype: the same rounding, the same numbers.
        if not (
            torch.equal(data.shift.to(self.shift), self.shift) and torch.equal(data.scale.to(self.scale), self.scale)
        ):
            raise LabError(
                f"{checkpoint} was trained on features normalised with other statistics than those of "
                f"{data.source} with data.preprocessing {data.hparams.preprocessing} and data.stats_rows "
                f"{data.hparams.stats_rows}: {_FIX}, or classify new measurements with predict"
            )
        val_size, split_seed = data.hparams.val_size, data.hparams.split_seed
        recorded = self.val_size is not None and self.split_seed is not None
        # The held-out rows are the permutation's last val_size: the same seed and a smaller val_size keep a subset.
        if val_size and recorded and (split_seed != self.split_seed or val_size > self.val_size):
            raise LabError(
                f"data.val_size {val_size} with data.split_seed {split_seed} holds out rows that {checkpoint} was "
                f"trained on (it held out data.val_size {self.val_size} with data.split_seed {self.split_seed}): "
                f"its validation accuracy would count them; {_FIX}, or data.val_size 0 to measure every row as "
                "a training row"
            )
