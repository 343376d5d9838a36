"""The one DataModule both exercises share: Iris (or any numeric CSV), preprocessed, served as full batches."""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch

from lab2_lightning.data.synthetic import SyntheticMatrix
from lab2_lightning.data.table import IRIS_FEATURES, LabelColumn, Table, packaged_iris, read_data
from lab2_lightning.utils.errors import LabError

Preprocessing = Literal["centre", "lab", "standardise", "none"]
StatsRows = Literal["all", "train"]
Batch = dict[str, torch.Tensor]


def preprocessing_stats(x: torch.Tensor, preprocessing: Preprocessing) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``(shift, scale)`` that preprocessing applies as ``(x - shift) / scale``, column by column.

    ``centre``: mean and 1 (Exercise 1); ``lab``: mean and the (unbiased) variance, the lab's own
    normalisation for Exercise 2 -- note: variance, not standard deviation; ``standardise``: mean and the
    standard deviation; ``none``: 0 and 1. Check the data with :func:`check_columns` first.
    """
    mean = x.mean(dim=0)
    ones = torch.ones_like(mean)
    if preprocessing == "none":
        return torch.zeros_like(mean), ones
    if preprocessing == "centre":
        return mean, ones
    if preprocessing not in ("lab", "standardise"):
        raise LabError(f"unknown preprocessing {preprocessing!r}: use centre, lab, standardise or none")
    return mean, x.var(dim=0) if preprocessing == "lab" else x.std(dim=0)


def check_columns(x: torch.Tensor, preprocessing: Preprocessing, names: list[str], where: str) -> None:
    """Refuse, naming the columns, data that ``preprocessing`` would turn into 0/0 or into nothing.

    A constant column has no spread, so ``lab`` and ``standardise`` would divide by 0, or by a rounding error (the
    mean of 150 copies of 3.3 is not exactly 3.3: a variance of 1e-31); and once every column is constant,
    subtracting the means leaves a matrix of zeros, whose factorisation's yardsticks are 0/0 and from which no
    classifier learns. Either ended in a misleading "training diverged". Hence constant means equal in every row, not
    a variance of 0. ``where`` names the file (and the rows the statistics come from).
    """
    constant = (x == x[:1]).all(dim=0).nonzero().flatten().tolist()
    if preprocessing == "none" or not constant:
        return
    listed = [names[j] if j < len(names) else f"x{j + 1}" for j in constant[:10]]
    if len(constant) > 10:
        listed.append(f"{len(constant) - 10} more")
    if len(constant) == x.shape[1]:
        raise LabError(
            f"{where}: every feature column is constant ({', '.join(listed)}): there is nothing to factorise or "
            f"learn (preprocessing {preprocessing!r} subtracts the column means, which leaves only zeros)"
        )
    if preprocessing in ("lab", "standardise"):
        which = (
            f"feature column {listed[0]} is constant ({float(x[0, constant[0]])!r} in every row)"
            if len(constant) == 1
            else f"feature columns {', '.join(listed)} are constant"
        )
        spread = "variance" if preprocessing == "lab" else "standard deviation"
        raise LabError(
            f"{where}: {which}: preprocessing {preprocessing!r} divides each column by its {spread}, which is 0 "
            f"there; drop {'it' if len(constant) == 1 else 'them'} or use data.preprocessing centre"
        )


def step_grid(steps_per_epoch: int, steps_per_batch: int, max_steps: int) -> tuple[int, int]:
    """The steps of an epoch and of a batch: ``steps_per_epoch`` lowered to a divisor of ``max_steps`` (when it is
    set), so that the last step ends an epoch, and ``steps_per_batch`` lowered to a divisor of that."""
    per_epoch = math.gcd(steps_per_epoch, max_steps) if max_steps > 0 else steps_per_epoch
    return per_epoch, math.gcd(per_epoch, steps_per_batch)


class FullBatch:
    """The whole split (this rank's share under DDP) as a single batch, served ``repeats`` times.

    Every step of the lab is on all rows, already in memory: Lightning takes any iterable with a length as a loader,
    and a plain one spares the DataLoader's machinery at every step and gets no ``DistributedSampler`` (the rows
    are already split between ranks, the batch is not).
    """

    def __init__(self, batch: Batch, repeats: int = 1) -> None:
        self.batch = batch
        self.repeats = repeats

    def __len__(self) -> int:
        return self.repeats

    @property
    def steps_per_batch(self) -> int:
        """Gradient steps a model takes on each batch: the batch's ``steps`` (1 when it does not say)."""
        return self.batch.get("steps", 1) if isinstance(self.batch, dict) else 1

    def __iter__(self) -> Iterator[Batch]:
        return itertools.repeat(self.batch, self.repeats)


class IrisDataModule(pl.LightningDataModule):
    """Iris, any CSV of numeric features with an optional label column, a matrix file, or a synthetic matrix.

    Each batch is a dict with ``x`` (the features, preprocessed, in ``dtype``), ``y`` (class ids, -1 without
    labels), ``rows`` (a ``slice``: the rows' positions in the training or validation split, so the factorisation
    can address its rows of U) and ``split_rows`` (the split's size, for a mean over the whole split). A training
    batch also has ``steps``: how many gradient steps the model takes on it.

    One Lightning epoch is ``steps_per_epoch`` full-batch steps. Each of the lab's "epochs" is one such step, so
    configs count them with ``trainer.max_steps``; a Lightning epoch of many steps spares Lightning's per-epoch
    overhead, which is much larger than one step on Iris. Likewise ``steps_per_batch`` steps on each batch spare
    Lightning's per-batch work (its hooks, loop and progress bookkeeping: about 0.3 ms, as much as a whole step of
    the lab on Iris). Under manual optimisation Lightning counts every optimizer step in ``global_step``, so
    ``max_steps``, checkpoints and logged curves still count gradient steps, and every step is still logged.

    The data are read in ``__init__``, not ``setup``, so that their sizes (``n_rows``, ``n_features``,
    ``n_classes``, ``class_names``) exist when the CLI links them into the model's arguments. The full batch is
    moved to the accelerator once and reused, not copied at every step.

    Args:
        path: CSV file (header and label column optional), or a ``.npy`` / ``.pt`` matrix; default: the UCI
            ``iris.data`` shipped with this package.
        synthetic: a low-rank-plus-noise matrix to generate instead of reading ``path``.
        label_column: index of the label column; ``auto`` takes the last column when it is not numeric;
            ``null`` for a file without labels.
        preprocessing: ``centre`` (subtract the column means; Exercise 1), ``lab`` (``(x - mean) / var``, the
            lab's choice for Exercise 2: variance, not standard deviation), ``standardise`` (divide by the
            standard deviation) or ``none``.
        stats_rows: rows the means and spreads come from. ``all`` is the lab's choice: it normalises all 150
            rows before splitting, so the validation rows leak into the statistics; ``train`` uses the
            training rows only, the textbook practice.
        val_size: number of rows held out for validation (0 = no validation; the lab holds out 50).
        split_seed: seed of the shuffle before splitting. The shuffle is ``np.random.RandomState(seed)``'s
            permutation, which is what the lab's ``df.sample(frac=1, random_state=0)`` does, so seed 0 gives
            the lab's split. It is separate from ``seed_everything`` so that one split can be kept while the
            model's initialisation varies. Rows keep the file's order when ``val_size`` is 0.
        steps_per_epoch: full-batch steps per Lightning epoch; validation and per-epoch checkpoints follow it. The
            epochs are shortened to a divisor of ``trainer.max_steps`` when needed, so the last step ends one.
        steps_per_batch: gradient steps the model takes on each training batch, lowered to a divisor of the epoch's
            steps when needed. It changes no number of the lab, only what Lightning does per batch: a callback's
            ``on_train_batch_end`` sees that many steps at once, stops (``max_time``, ``should_stop``) take effect
            between batches, and what counts batches counts these (``log_every_n_steps``, ``limit_train_batches``,
            ``LearningRateMonitor``'s axis). 1 is Lightning's usual one step per batch.
        dtype: dtype the features are kept in. ``float32`` halves a large matrix's memory and spares a
            conversion at every step when the Trainer runs in 32-bit precision.
    """

    def __init__(
        self,
        path: str | None = None,
        synthetic: SyntheticMatrix | None = None,
        label_column: LabelColumn = "auto",
        preprocessing: Preprocessing = "centre",
        stats_rows: StatsRows = "all",
        val_size: int = 0,
        split_seed: int = 0,
        steps_per_epoch: int = 1,
        steps_per_batch: int = 1,
        dtype: Literal["float64", "float32"] = "float64",
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["synthetic"], logger=False)
        self.hparams["synthetic"] = asdict(synthetic) if synthetic is not None else None  # plain data in checkpoints
        if steps_per_epoch < 1:
            raise LabError(f"data.steps_per_epoch must be at least 1, got {steps_per_epoch}")
        if steps_per_batch < 1:
            raise LabError(f"data.steps_per_batch must be at least 1, got {steps_per_batch}")
        if synthetic is not None:
            table = Table(synthetic.generate().numpy(), None, [], Path(f"synthetic {synthetic}"), [])
        else:
            table = read_data(path if path is not None else packaged_iris(), label_column)
        n = len(table.features)
        if not 0 <= val_size < n:
            raise LabError(f"data.val_size must be between 0 and {n - 1} (the file has {n} rows), got {val_size}")

        self.source = table.path
        # The packaged iris.data has no header, but its columns are known: a model trained on it matches a
        # prediction file's header by name too, rather than taking "petal_length, sepal_length, ..." by position.
        packaged = path is None and synthetic is None
        self._feature_names = table.feature_names if table.has_header else IRIS_FEATURES if packaged else None
        self.class_names: list[str] = sorted(set(table.labels)) if table.labels is not None else []
        class_id = {name: i for i, name in enumerate(self.class_names)}
        labels = [class_id[label] for label in table.labels] if table.labels is not None else [-1] * n

        order = np.random.RandomState(split_seed).permutation(n) if val_size else np.arange(n)
        train_rows, val_rows = order[: n - val_size], order[n - val_size :]
        x = torch.from_numpy(table.features)
        y = torch.tensor(labels, dtype=torch.long)
        stats_from = x if stats_rows == "all" else x[torch.from_numpy(train_rows)]
        where = f"{table.path}" if stats_rows == "all" else f"{table.path} (its training rows)"
        check_columns(stats_from, preprocessing, table.feature_names, where)
        self.shift, self.scale = preprocessing_stats(stats_from, preprocessing)
        x = ((x - self.shift) / self.scale).to(getattr(torch, dtype))

        self.train_x, self.train_y = x[train_rows], y[train_rows]
        self.val_x, self.val_y = x[val_rows], y[val_rows]
        self.train_rows, self.val_rows = torch.from_numpy(train_rows), torch.from_numpy(val_rows)
        self._on_device: dict[tuple[int, torch.device], tuple[Batch, Batch]] = {}

    @property
    def n_rows(self) -> int:
        """Rows in the training split (the rows of U in the factorisation)."""
        return len(self.train_x)

    @property
    def n_features(self) -> int:
        return self.train_x.shape[1]

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def feature_names(self) -> list[str] | None:
        """The header's names of the feature columns, in file order; ``None`` for a file without a header (a model
        then takes the columns of a file to classify by position). The CLI links them into the model."""
        return self._feature_names

    @functools.cached_property
    def identity(self) -> dict[str, str | None]:
        """What the data are: ``source``, the file's absolute path (a synthetic matrix: its settings), and ``sha256``,
        the SHA-256 of the file's bytes (``None`` for a synthetic matrix, which its settings define). Computed once,
        when first needed (a checkpoint, a resume's check): one more read of the file."""
        if self.hparams.synthetic is not None:
            return {"source": str(self.source), "sha256": None}
        digest = hashlib.sha256()
        with open(self.source, "rb") as file:
            for block in iter(functools.partial(file.read, 1 << 20), b""):
                digest.update(block)
        return {"source": str(Path(self.source).resolve()), "sha256": digest.hexdigest()}

    def state_dict(self) -> dict[str, Any]:
        """Kept in every checkpoint (under the class's name, by Lightning), so that a resume on other data is refused
        (:func:`recorded_data`)."""
        return dict(self.identity)

    def _loader(self, x: torch.Tensor, y: torch.Tensor, repeats: int = 1, **extra: Any) -> FullBatch:
        """The split as one batch (with ``extra`` entries); under DDP, this rank's contiguous share of its rows (the
        update stays the full-batch gradient: see :meth:`~lab2_lightning.models.full_batch.FullBatchGD`)."""
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        if len(x) < world:
            raise LabError(f"{len(x)} rows cannot be shared between {world} devices: use fewer devices")
        bounds = np.linspace(0, len(x), world + 1).round().astype(int)
        start, stop = int(bounds[rank]), int(bounds[rank + 1])
        batch = {"x": x[start:stop], "y": y[start:stop], "rows": slice(start, stop), "split_rows": torch.tensor(len(x))}
        return FullBatch(batch | extra, repeats)

    def transfer_batch_to_device(self, batch: Batch, device: torch.device, dataloader_idx: int) -> Batch:
        """Copy each full batch to the device once; every later step reuses that copy. Values that are not tensors
        (the prediction batch's ``columns``) stay as they are."""
        key = (id(batch), device)
        if key not in self._on_device:  # the cache keeps ``batch`` alive, so its id cannot be reused meanwhile
            moved = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            self._on_device[key] = (batch, moved)
        return self._on_device[key][1]

    def teardown(self, stage: str) -> None:
        self._on_device.clear()

    def train_dataloader(self) -> FullBatch:
        """``steps_per_epoch`` steps per epoch, or fewer so that the last of ``trainer.max_steps`` ends an epoch:
        Lightning validates and checkpoints at the end of an epoch, not when it stops in the middle of one, and the
        final numbers must be those of the final weights (100 steps at 10: epochs of 10; 25 steps: epochs of 5).
        The epoch's steps come in batches of ``steps_per_batch`` steps, or of its largest divisor that divides them
        too (epochs of 100 steps at 30 per batch: batches of 10 steps)."""
        max_steps = self.trainer.max_steps if self.trainer is not None else -1
        steps, per_batch = step_grid(self.hparams.steps_per_epoch, self.hparams.steps_per_batch, max_steps)
        return self._loader(self.train_x, self.train_y, steps // per_batch, steps=per_batch)

    def val_dataloader(self) -> list[FullBatch]:
        """Both splits, so every epoch measures the current weights on train and validation alike.

        Loader 0 is the training split, loader 1 the validation split (when ``val_size`` > 0). Evaluating the
        training split here, after the epoch's step, is what makes the final numbers those of the final weights.
        """
        loaders = [self._loader(self.train_x, self.train_y)]
        if len(self.val_x):
            loaders.append(self._loader(self.val_x, self.val_y))
        return loaders

    def predict_dataloader(self) -> FullBatch:
        """The file's rows to classify, as one batch: ``x``, the raw features (float64, not preprocessed: the model
        applies the statistics of its own training data), ``line``, their line numbers in the file, and
        ``columns``, the header's feature names in file order (``None`` without a header), by which the model
        puts the columns in its own order (:func:`~lab2_lightning.data.table.align_columns`), and ``source``, the
        file's name for its messages.

        The file is read again here rather than kept from ``__init__``, which keeps only the preprocessed copy.
        """
        if self.hparams.synthetic is not None:
            raise LabError("predict classifies the rows of a file: give data.path, not data.synthetic")
        table = read_data(self.source, self.hparams.label_column)
        batch = {
            "x": torch.from_numpy(table.features),
            "line": torch.tensor(table.lines, dtype=torch.long),
            "columns": table.feature_names if table.has_header else None,
            "source": str(self.source),
        }
        return FullBatch(batch)


def recorded_data(checkpoint: dict[str, Any]) -> dict[str, str | None] | None:
    """The :attr:`IrisDataModule.identity` of the data a checkpoint was trained on; ``None`` for a checkpoint written
    before it was recorded. Lightning keeps a DataModule's ``state_dict`` under the class's name."""
    return checkpoint.get(IrisDataModule.__qualname__)
