"""The shared DataModule: shapes, preprocessing against a hand computation, splits, and bad input."""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lab2_lightning.data.datamodule import IrisDataModule
from lab2_lightning.data.table import packaged_iris

IRIS = packaged_iris()


def iris_by_hand() -> tuple[list[list[float]], list[str]]:
    """The packaged file read with the csv module: an oracle independent of pandas and of the DataModule."""
    rows = [row for row in csv.reader(IRIS.open()) if row]
    return [[float(v) for v in row[:4]] for row in rows], [row[4] for row in rows]


def test_packaged_file_is_ucis() -> None:
    import hashlib

    digest = hashlib.sha256(IRIS.read_bytes()).hexdigest()
    assert digest.startswith("6f608b71")


def test_shapes_classes_and_full_batch() -> None:
    data = IrisDataModule()
    assert (data.n_rows, data.n_features, data.n_classes) == (150, 4, 3)
    assert data.class_names == ["Iris-setosa", "Iris-versicolor", "Iris-virginica"]
    (batch,) = list(data.train_dataloader())
    assert batch["x"].shape == (150, 4) and batch["x"].dtype == torch.float64
    assert batch["y"].tolist() == [0] * 50 + [1] * 50 + [2] * 50
    assert batch["rows"] == slice(0, 150)
    assert len(data.val_dataloader()) == 1  # no validation split: only the training split is evaluated


@pytest.mark.parametrize("preprocessing", ["centre", "lab", "standardise", "none"])
def test_preprocessing_matches_hand_computation(preprocessing: str) -> None:
    features, _ = iris_by_hand()
    columns = list(zip(*features, strict=True))
    means = [statistics.fmean(c) for c in columns]
    spread = {
        "centre": [1.0] * 4,
        "lab": [statistics.variance(c) for c in columns],
        "standardise": [statistics.stdev(c) for c in columns],
        "none": [1.0] * 4,
    }[preprocessing]
    shift = [0.0] * 4 if preprocessing == "none" else means
    expected = [[(v - shift[j]) / spread[j] for j, v in enumerate(row)] for row in features]
    data = IrisDataModule(preprocessing=preprocessing)
    torch.testing.assert_close(data.train_x, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-12)


def test_lab_split_is_pandas_sample_with_seed() -> None:
    """Seed 0 reproduces the lab's ``df.sample(frac=1, random_state=0)``: first 100 rows train, last 50 val."""
    frame = pd.read_csv(IRIS, header=None).sample(frac=1, random_state=0)
    data = IrisDataModule(preprocessing="none", val_size=50, split_seed=0)
    np.testing.assert_array_equal(data.train_x.numpy(), frame.iloc[:100, :4].to_numpy())
    np.testing.assert_array_equal(data.val_x.numpy(), frame.iloc[100:, :4].to_numpy())
    names = data.class_names
    assert [names[k] for k in data.val_y] == list(frame.iloc[100:, 4])


def test_split_reproducible_and_seed_dependent() -> None:
    a = IrisDataModule(val_size=50, split_seed=3)
    b = IrisDataModule(val_size=50, split_seed=3)
    c = IrisDataModule(val_size=50, split_seed=4)
    assert torch.equal(a.train_rows, b.train_rows) and torch.equal(a.val_x, b.val_x)
    assert not torch.equal(a.train_rows, c.train_rows)
    assert sorted(a.train_rows.tolist() + a.val_rows.tolist()) == list(range(150))
    assert a.class_names == c.class_names  # class ids follow sorted names, whatever the shuffle


def test_statistics_rows() -> None:
    everything = IrisDataModule(preprocessing="lab", stats_rows="all", val_size=50)
    train_only = IrisDataModule(preprocessing="lab", stats_rows="train", val_size=50)
    raw = IrisDataModule(preprocessing="none", val_size=50)
    torch.testing.assert_close(train_only.shift, raw.train_x.mean(0))
    torch.testing.assert_close(train_only.scale, raw.train_x.var(0))
    torch.testing.assert_close(everything.scale, torch.cat([raw.train_x, raw.val_x]).var(0))
    torch.testing.assert_close(train_only.train_x.mean(0), torch.zeros(4, dtype=torch.float64))


def test_csv_with_header_and_other_sizes(tmp_path: Path) -> None:
    path = tmp_path / "plants.csv"
    path.write_text("a,b,kind\n1,2,y\n3,5,x\n4,4,y\n")
    data = IrisDataModule(path=str(path), preprocessing="none")
    assert (data.n_rows, data.n_features, data.class_names) == (3, 2, ["x", "y"])
    assert data.feature_names == ["a", "b"]
    assert data.train_y.tolist() == [1, 0, 1]


def test_csv_without_labels_and_numeric_labels(tmp_path: Path) -> None:
    path = tmp_path / "matrix.csv"
    path.write_text("1,2,0\n3,5,1\n4,4,2\n")
    assert IrisDataModule(path=str(path)).n_features == 3  # auto: an all-numeric last column is a feature
    labelled = IrisDataModule(path=str(path), label_column=-1)
    assert (labelled.n_features, labelled.class_names) == (2, ["0", "1", "2"])
