"""Exercise 2: the LightningModule against the lab's plain loop, and its metrics against counts made by hand."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import MLP_SEEDS, QUIET, Run, fit, mlp_data, plain_mlp

from lab2_lightning.data import TableDataModule
from lab2_lightning.data.reading import packaged_iris, read_data
from lab2_lightning.models.reference import mlp_forward

WEIGHTS = ("W1", "W2", "b1", "b2")
CLASSES = ["Iris-setosa", "Iris-versicolor", "Iris-virginica"]


@pytest.mark.parametrize("member", range(len(MLP_SEEDS)))
def test_every_seed_equals_the_plain_loop_bitwise(mlp_run: Run, member: int) -> None:
    """Each member of ``fit --config mlp`` ends with exactly the weights of the lab's sgd_mlp for its seed."""
    expected = plain_mlp(MLP_SEEDS[member])
    state = mlp_run.state_dict()
    for name in WEIGHTS:
        assert torch.equal(state[f"{name}.{member}"], expected[name]), name
    assert mlp_run.results["runs"][member]["seed"] == MLP_SEEDS[member]
    assert mlp_run.results["runs"][member]["steps"] == 100


def _by_hand(weights: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> tuple[list, list, list, float]:
    """Per-class accuracy, class counts, confusion matrix (rows: true class) and accuracy, counted in plain Python."""
    predicted = mlp_forward(x, weights["W1"], weights["W2"], weights["b1"], weights["b2"]).argmax(dim=1).tolist()
    truth = y.tolist()
    confusion = [[0] * 3 for _ in range(3)]
    for t, p in zip(truth, predicted, strict=True):
        confusion[t][p] += 1
    counts = [sum(row) for row in confusion]
    per_class = [confusion[k][k] / counts[k] for k in range(3)]
    overall = sum(confusion[k][k] for k in range(3)) / len(truth)
    return per_class, counts, confusion, overall


@pytest.mark.parametrize("member", range(len(MLP_SEEDS)))
@pytest.mark.parametrize("split", ["train", "val"])
def test_accuracies_and_confusion_equal_a_hand_count(mlp_run: Run, member: int, split: str) -> None:
    """Per-class and overall accuracy, class counts and the torchmetrics confusion matrix in results equal counts made
    by hand from the oracle weights' predictions."""
    train_x, train_y, val_x, val_y = mlp_data()
    x, y = (train_x, train_y) if split == "train" else (val_x, val_y)
    per_class, counts, confusion, overall = _by_hand(plain_mlp(MLP_SEEDS[member]), x, y)
    got = mlp_run.results["runs"][member][split]
    assert got["confusion"] == confusion
    assert got["class_counts"] == dict(zip(CLASSES, counts, strict=True))
    assert [got["acc_per_class"][name] for name in CLASSES] == pytest.approx(per_class, rel=1e-6)
    assert got["acc"] == pytest.approx(overall, rel=1e-6)


@pytest.mark.parametrize("member", range(len(MLP_SEEDS)))
def test_final_losses_are_the_summed_cross_entropy_of_the_final_weights(mlp_run: Run, member: int) -> None:
    """Each split's loss in results is the summed cross-entropy of the oracle's final weights on that split."""
    train_x, train_y, val_x, val_y = mlp_data()
    weights = plain_mlp(MLP_SEEDS[member])
    for split, x, y in (("train", train_x, train_y), ("val", val_x, val_y)):
        logits = mlp_forward(x, weights["W1"], weights["W2"], weights["b1"], weights["b2"])
        expected = float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
        assert mlp_run.results["runs"][member][split]["loss"] == pytest.approx(expected, rel=1e-5)


def test_mean_reduction_equals_the_plain_loop_bitwise(tmp_path: Path) -> None:
    """``--config mlp_mean`` equals sgd_mlp(..., reduction="mean") bit for bit (the module's sum / rows and
    cross_entropy's mean round alike here)."""
    fit("--config", "mlp_mean", "--model.seeds", "[0,1]")
    state = torch.load(tmp_path / "lightning_logs/version_0/checkpoints/last.ckpt", weights_only=False)["state_dict"]
    for member, seed in enumerate((0, 1)):
        expected = plain_mlp(seed, "mean")
        for name in WEIGHTS:
            assert torch.equal(state[f"{name}.{member}"], expected[name]), name
        # and not the sum's weights: the config changed the training
        assert not torch.equal(state[f"W1.{member}"], plain_mlp(seed)["W1"])


def test_per_unit_bias_has_a_bias_per_unit(tmp_path: Path) -> None:
    """``--model.bias per_unit`` gives b1 one entry per hidden unit and b2 one per class; scalar gives scalars."""
    results = fit("--config", "mlp", "--model.bias", "per_unit", "--model.hidden", "5", "--trainer.max_steps", "10")
    state = torch.load(tmp_path / "lightning_logs/version_0/checkpoints/last.ckpt", weights_only=False)["state_dict"]
    assert state["b1.0"].shape == (5,)
    assert state["b2.0"].shape == (3,)
    assert state["W1.0"].shape == (4, 5)
    assert results["runs"][0]["bias"] == "per_unit"
    # the biases were trained (not left at their initial zeros)
    assert state["b1.0"].abs().sum() > 0


def test_scalar_bias_is_a_scalar(mlp_run: Run) -> None:
    """The lab's choice, ``bias: scalar``: b1 and b2 are single numbers."""
    state = mlp_run.state_dict()
    assert state["b1.0"].shape == ()
    assert state["b2.0"].shape == ()


def test_the_split_is_the_labs_shuffle() -> None:
    """The validation rows are the last 50 of np.random.RandomState(0).permutation(150), 19 of them setosa, and the
    features are (x - mean) / var over all 150 rows."""
    data = TableDataModule(preprocessing="divide_by_variance", stats_rows="all", val_size=50, split_seed=0)
    raw = read_data(packaged_iris())
    x = torch.from_numpy(raw.features)
    order = np.random.RandomState(0).permutation(150)
    normalised = (x - x.mean(dim=0)) / x.var(dim=0)
    assert torch.equal(data.train_x, normalised[order[:100]])
    assert torch.equal(data.val_x, normalised[order[100:]])
    labels = np.array(raw.labels)
    assert [data.class_names[k] for k in data.val_y.tolist()] == list(labels[order[100:]])
    assert len(data.val_x) == 50
    assert (labels[order[100:]] == "Iris-setosa").sum() == 19


def test_the_fit_reports_the_splits_class_counts(mlp_run: Run) -> None:
    """results name each split's rows per class: 19 setosa of the 50 validation rows, 100 training rows."""
    run = mlp_run.results["runs"][0]
    assert run["val"]["class_counts"]["Iris-setosa"] == 19
    assert sum(run["val"]["class_counts"].values()) == 50
    assert sum(run["train"]["class_counts"].values()) == 100
    assert run["class_names"] == CLASSES


def test_the_final_numbers_are_those_of_the_final_weights_mid_epoch(tmp_path: Path) -> None:
    """``fit --config mlp --trainer.max_steps 15``: the reported losses are those of the weights after step 15."""
    results = fit("--config", "mlp", "--trainer.max_steps", "15")
    _, _, val_x, val_y = mlp_data()
    weights = plain_mlp(0, steps=15)
    logits = mlp_forward(val_x, weights["W1"], weights["W2"], weights["b1"], weights["b2"])
    assert results["runs"][0]["steps"] == 15
    assert results["runs"][0]["val"]["loss"] == pytest.approx(
        float(torch.nn.functional.cross_entropy(logits, val_y, reduction="sum")), rel=1e-5
    )


def test_a_divergence_the_last_step_makes_is_refused(fails: Callable[..., str], tmp_path: Path) -> None:
    """lr 1.0 makes the weights NaN in the last steps: the validation of the final weights is refused in one line
    naming the divergence and lr, never reported as a loss of 0.0."""
    line = fails("fit", "--config", "mlp", "--model.lr", "1.0", "--trainer.max_steps", "10", *QUIET)
    assert "diverged" in line and "lr 1.0" in line
    assert not (tmp_path / "lightning_logs" / "version_0").exists()


def test_metrics_csv_has_one_row_per_logged_step(mlp_run: Run) -> None:
    """Every step the MLP logs (each step's training loss; every tenth, its validation numbers too) is one row of
    metrics.csv, with each member's value of every metric logged at that step."""
    with (mlp_run.run_dir / "metrics.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [int(row["step"]) for row in rows] == list(range(1, 101))
    tenth = rows[9]
    assert all(tenth[f"seed_{seed}/accuracy/val"] and tenth[f"seed_{seed}/cross_entropy/train"] for seed in MLP_SEEDS)


@pytest.mark.parametrize(
    "schedule", [["--trainer.check_val_every_n_epoch", "2"], ["--trainer.limit_val_batches", "0"]]
)  # validation at step 10 of 15, or never
def test_the_results_are_the_final_weights_whatever_the_validation_schedule(schedule: list[str]) -> None:
    """The reported confusion matrices are those of the weights after the last of 15 steps (the lab's loop after
    15 epochs, counted by hand), not of the last validation's."""
    results = fit("--config", "mlp", "--trainer.max_steps", "15", *schedule)
    train_x, train_y, val_x, val_y = mlp_data()
    weights = plain_mlp(0, steps=15)
    for split, x, y in (("train", train_x, train_y), ("val", val_x, val_y)):
        assert results["runs"][0][split]["confusion"] == _by_hand(weights, x, y)[2]
    assert results["curves"]["val"][-1][0] == 15
