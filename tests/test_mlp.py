"""Exercise 2: the seed contract, Lightning against the lab's loop, accuracies counted by hand, TensorBoard tags."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from lab2_lightning.callbacks import RunSummary
from lab2_lightning.data.datamodule import IrisDataModule
from lab2_lightning.models.metrics import MemberConfusion
from lab2_lightning.models.mlp import LabMLP
from lab2_lightning.models.reference import sgd_mlp
from tests.conftest import read_results
from tests.test_cli import event_tags

CLASSES = ["Iris-setosa", "Iris-versicolor", "Iris-virginica"]


def lab_data(steps_per_batch: int = 1) -> IrisDataModule:
    return IrisDataModule(
        preprocessing="lab", stats_rows="all", val_size=50, split_seed=0, steps_per_epoch=10,
        steps_per_batch=steps_per_batch,
    )  # fmt: skip


def fit_mlp(
    seeds: list[int], steps: int = 100, steps_per_batch: int = 1, **hparams: Any
) -> tuple[LabMLP, IrisDataModule, RunSummary]:
    data = lab_data(steps_per_batch)
    model = LabMLP(n_features=4, n_classes=3, class_names=data.class_names, seeds=seeds, **hparams)
    summary = RunSummary()
    pl.Trainer(
        max_steps=steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[summary],
    ).fit(model, datamodule=data)
    return model, data, summary


def test_initialisation_follows_the_seed_contract() -> None:
    pl.seed_everything(5)
    model = LabMLP(n_features=4, n_classes=3, hidden=12)
    torch.manual_seed(5)
    assert torch.equal(model.W1.data[0], torch.randn(4, 12))
    assert torch.equal(model.W2.data[0], torch.randn(12, 3))
    assert model.b1.numel() == model.b2.numel() == 1 and model.b1.item() == model.b2.item() == 0.0
    per_unit = LabMLP(n_features=4, n_classes=3, hidden=12, bias="per_unit", seeds=[1, 2])
    assert per_unit.b1.shape == (2, 1, 12) and per_unit.b2.shape == (2, 1, 3)
    torch.manual_seed(2)
    assert torch.equal(per_unit.W1.data[1], torch.randn(4, 12))


@pytest.mark.parametrize(
    ("seeds", "reduction", "exact"),
    [([0], "sum", True), ([3], "sum", True), ([0], "mean", False), ([0, 3, 5], "sum", False)],
)
def test_lightning_matches_the_labs_plain_loop(seeds: list[int], reduction: str, exact: bool) -> None:
    """One seed: bit for bit. Several members multiply in one batched product: within float32 rounding."""
    model, data, _ = fit_mlp(seeds, reduction=reduction)
    for member, seed in enumerate(seeds):
        torch.manual_seed(seed)
        weights = sgd_mlp(data.train_x.float(), data.train_y, num_epochs=100, lr=0.01, reduction=reduction)
        for name, value in weights.items():
            got = getattr(model, name).data[member].reshape(value.shape)
            torch.testing.assert_close(got, value, rtol=0, atol=0 if exact else 1e-6)


@pytest.mark.parametrize("steps_per_batch", [10, 4])
def test_several_steps_per_batch_change_no_number(steps_per_batch: int) -> None:
    """Batches of 10 steps (and of 2: 4 lowered to divide the epochs of 10): the same weights, bit for bit, and the
    same validations after the same steps."""
    grouped, _, grouped_summary = fit_mlp([0, 3], steps_per_batch=steps_per_batch)
    single, _, single_summary = fit_mlp([0, 3])
    for name in ("W1", "W2", "b1", "b2"):
        assert torch.equal(getattr(grouped, name).data, getattr(single, name).data), name
    assert grouped.history.keys() == single.history.keys()
    for tag in grouped.history:
        assert grouped.curve(tag, 1) == single.curve(tag, 1), tag
    assert grouped.curve("val/acc")["step"] == list(range(10, 101, 10))
    assert grouped_summary.runs == single_summary.runs


def test_batched_seeds_equal_separate_runs() -> None:
    batched, _, summary = fit_mlp(list(range(10)))
    for seed in range(10):
        alone, _, alone_summary = fit_mlp([seed])
        for name in ("W1", "W2", "b1", "b2"):
            torch.testing.assert_close(
                getattr(batched, name).data[seed], getattr(alone, name).data[0], rtol=0, atol=1e-6
            )
        for split in ("train", "val"):
            assert summary.runs[seed][split]["confusion"] == alone_summary.runs[0][split]["confusion"]


def test_accuracies_equal_counts_by_hand_on_the_final_weights() -> None:
    model, data, summary = fit_mlp([0, 1])
    with torch.no_grad():
        for member, results in enumerate(summary.runs):
            for split, x, y in (("train", data.train_x, data.train_y), ("val", data.val_x, data.val_y)):
                logits = model(x.float())[member]
                predicted = logits.argmax(dim=1).tolist()
                truth = y.tolist()
                correct = sum(p == t for p, t in zip(predicted, truth, strict=True))
                assert results[split]["acc"] == pytest.approx(correct / len(truth))
                for k, name in enumerate(CLASSES):
                    rows = [p for p, t in zip(predicted, truth, strict=True) if t == k]
                    assert results[split]["class_counts"][name] == len(rows)
                    by_hand = sum(p == k for p in rows) / len(rows)
                    assert results[split]["acc_per_class"][name] == pytest.approx(by_hand)
                loss = torch.nn.functional.cross_entropy(logits, y, reduction="sum")
                assert results[split]["loss"] == pytest.approx(float(loss), rel=1e-5)
            assert results["train"]["rows"] == 100 and results["val"]["rows"] == 50


def test_member_confusion_agrees_with_torchmetrics() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 60, 3, generator=generator)
    target = torch.randint(0, 3, (60,), generator=generator)
    metric = MemberConfusion(4, 3)
    metric.update(logits[:, :25], target[:25])  # two updates, as two shards would be
    metric.update(logits[:, 25:], target[25:])
    computed = metric.compute()
    for member in range(4):
        per_class = MulticlassAccuracy(3, average=None)(logits[member], target)
        overall = MulticlassAccuracy(3, average="micro")(logits[member], target)
        confusion = MulticlassConfusionMatrix(3)(logits[member], target)
        torch.testing.assert_close(computed["acc_per_class"][member].float(), per_class)
        torch.testing.assert_close(computed["acc"][member].float(), overall)
        assert torch.equal(computed["confusion"][member], confusion)


def test_class_absent_from_a_split_has_no_accuracy() -> None:
    model, _, _ = fit_mlp([0], steps=1)
    model.final["val"]["rows_per_class"][2] = 0  # as if no virginica were in the validation rows
    assert model.member_results()[0]["val"]["acc_per_class"]["Iris-virginica"] is None


def test_mlp_run_through_main(tmp_path: Path, configs: Path, run_cli: Callable[..., dict[str, Any]]) -> None:
    run_cli("--config", str(configs / "mlp.yaml"))
    results = read_results(tmp_path)
    (run,) = results["runs"]
    assert results["model"] == "LabMLP" and run["epochs"] == 100 and run["seed"] == results["seed"] == 0
    assert run["class_names"] == CLASSES
    assert sum(run["train"]["class_counts"].values()) == 100
    assert sum(run["val"]["class_counts"].values()) == 50
    assert results["settings"]["model"]["init_args"]["reduction"] == "sum"

    tags = event_tags(tmp_path / "lightning_logs" / "version_0")
    expected = ["train/loss", "val/loss", "train/acc", "val/acc", "final/val/acc"]
    expected += [f"{split}/acc_{name}" for split in ("train", "val") for name in CLASSES]
    assert set(expected) <= set(tags["scalars"])
    assert {"train/confusion_matrix", "val/confusion_matrix"} <= set(tags["images"])


def test_lab_sheet_config_uses_mean_reduction(configs: Path, run_cli: Callable[..., dict[str, Any]]) -> None:
    (run,) = run_cli("--config", str(configs / "mlp_mean.yaml"), "--trainer.max_steps", "3")["runs"]
    assert run["reduction"] == "mean" and run["epochs"] == 3 and run["bias"] == "scalar"


def test_checkpoints_kept_by_validation_accuracy(tmp_path: Path, run_cli: Callable[..., dict[str, Any]]) -> None:
    """``--checkpoint.monitor val/acc`` sees the validation accuracy (the mean over the members) and keeps the best."""
    run_cli("--config", "mlp", "--checkpoint.monitor", "val/acc", "--checkpoint.mode", "max",
            "--checkpoint.save_top_k", "2", "--checkpoint.every_n_epochs", "1")  # fmt: skip
    folder = tmp_path / "lightning_logs" / "version_0" / "checkpoints"
    kept = {path.name for path in folder.iterdir()} - {"last.ckpt"}
    assert len(kept) == 2, kept
    states = torch.load(folder / "last.ckpt", weights_only=True)["callbacks"]
    (state,) = [value for key, value in states.items() if key.startswith("ModelCheckpoint")]
    assert {Path(path).name for path in state["best_k_models"]} == kept
    assert all(0 < float(score) <= 1 for score in state["best_k_models"].values())  # accuracies
