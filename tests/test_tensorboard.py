"""TensorBoard as a user reads it: every step a point, one step numbering, a run per member, real HParams rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from lab2_lightning.callbacks import ConfusionFigures, EckartYoungComparison, RunSummary
from lab2_lightning.data.datamodule import IrisDataModule
from lab2_lightning.models.factorisation import LowRankFactorisation
from lab2_lightning.models.mlp import LabMLP
from tests.conftest import read_run

CLASSES = ["Iris-setosa", "Iris-versicolor", "Iris-virginica"]


def hparams_of(run: EventAccumulator) -> dict[str, Any]:
    """The run's HParams row: its hparam values. The run writes no experiment summary of its own: TensorBoard takes
    the first it finds as the columns of the whole log folder, which would hide the other exercise's."""
    values: dict[str, Any] = {}
    for raw in run.PluginTagToContent("hparams").values():
        data = plugin_data_pb2.HParamsPluginData.FromString(raw)
        assert not data.HasField("experiment")
        if data.HasField("session_start_info"):
            values = {k: v.string_value or v.number_value for k, v in data.session_start_info.hparams.items()}
    return values


def fit(model: pl.LightningModule, data: pl.LightningDataModule, root: Path, steps: int, **kwargs: Any) -> RunSummary:
    summary = RunSummary()
    pl.Trainer(
        max_steps=steps,
        accelerator="cpu",
        logger=TensorBoardLogger(root, name="", version="run"),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[*kwargs.pop("callbacks", []), summary],
        **kwargs,
    ).fit(model, datamodule=data)
    return summary


def test_one_member_mlp_every_step_and_the_final_validation(tmp_path: Path) -> None:
    data = IrisDataModule(preprocessing="lab", val_size=50, steps_per_epoch=10)
    model = LabMLP(class_names=data.class_names, seeds=[4])
    summary = fit(model, data, tmp_path, steps=100, callbacks=[ConfusionFigures()])
    run = read_run(tmp_path / "run")

    train_loss = run.Scalars("train/loss")
    assert [event.step for event in train_loss] == list(range(1, 101))  # the loss computed in step k, every k
    assert [event.value for event in train_loss] == pytest.approx(model.curve("train/loss")["value"], rel=1e-6)
    val_loss = run.Scalars("val/loss")
    assert [event.step for event in val_loss] == list(range(10, 101, 10))  # after step k: the last is the final
    assert val_loss[-1].value == pytest.approx(summary.runs[0]["val"]["loss"], rel=1e-6)
    assert model.curve("val/loss")["value"][-1] == pytest.approx(summary.runs[0]["val"]["loss"])
    for name in CLASSES:
        assert run.Scalars(f"val/acc_{name}")[-1].value == pytest.approx(summary.runs[0]["val"]["acc_per_class"][name])
    assert {"train/confusion_matrix", "val/confusion_matrix"} <= set(run.Tags()["images"])

    values = hparams_of(run)
    assert values["seed"] == 4 and values["model/hidden"] == 12 and values["data/preprocessing"] == "lab"
    assert not [key for key in values if key.startswith("_") or "instantiator" in key]
    assert {"final/val/acc", *(f"final/val/acc_{name}" for name in CLASSES)} <= set(run.Tags()["scalars"])
    assert "hp_metric" not in run.Tags()["scalars"]
    assert run.Scalars("final/val/acc")[-1].value == pytest.approx(summary.runs[0]["val"]["acc"])


def test_members_are_runs_of_their_own(tmp_path: Path) -> None:
    data = IrisDataModule(preprocessing="centre", steps_per_epoch=20)
    model = LowRankFactorisation(seeds=[0, 5, 6])
    summary = fit(model, data, tmp_path, steps=60, precision="64-true", callbacks=[EckartYoungComparison()])
    for member, seed in enumerate([0, 5, 6]):
        run = read_run(tmp_path / "run" / f"seed_{seed}")
        steps = [event.step for event in run.Scalars("train/loss")]
        assert steps == list(range(1, 61))
        assert run.Scalars("final/gd_loss")[-1].value == pytest.approx(summary.runs[member]["gd_loss"])
        assert run.Scalars("final/relative_gap")[-1].value == pytest.approx(summary.runs[member]["relative_gap"])
        values = hparams_of(run)
        assert values["seed"] == seed and values["rank"] == 2 and values["model/gradient"] == "autograd"
        assert {"final/gd_loss", "final/relative_gap"} <= set(run.Tags()["scalars"])
        assert ("pca_vs_gd" in run.Tags()["images"]) == (member == 0)  # one figure per training, not per seed


class PointsOnDisk(pl.Callback):
    """Reads the runs' event files at the end of each epoch, as a TensorBoard open during the training would."""

    def __init__(self, folders: list[Path]) -> None:
        self.folders, self.seen = folders, []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.seen.append([len(read_run(folder).Scalars("train/loss")) for folder in self.folders])


def test_a_running_tensorboard_sees_every_epoch_as_it_ends(tmp_path: Path) -> None:
    data = IrisDataModule(preprocessing="centre", steps_per_epoch=10)
    on_disk = PointsOnDisk([tmp_path / "run" / f"seed_{seed}" for seed in (0, 1)])
    fit(LowRankFactorisation(seeds=[0, 1]), data, tmp_path, steps=30, callbacks=[on_disk])
    assert on_disk.seen == [[10, 10], [20, 20], [30, 30]]


def test_a_continued_run_shows_each_step_once(tmp_path: Path) -> None:
    """The run that stopped logged 30 steps but its checkpoint holds 20 (a stop between the two is possible):
    continued from that checkpoint, TensorBoard shows steps 1..40 once each, the later ones the continued run's."""
    data = IrisDataModule(preprocessing="centre", steps_per_epoch=10)
    checkpoints = tmp_path / "checkpoints"

    def trainer(steps: int) -> pl.Trainer:
        keep_all = pl.callbacks.ModelCheckpoint(dirpath=checkpoints, save_top_k=-1, every_n_epochs=1)
        return pl.Trainer(
            max_steps=steps, accelerator="cpu", logger=TensorBoardLogger(tmp_path, name="", version="run"),
            callbacks=[keep_all], enable_progress_bar=False, enable_model_summary=False,
        )  # fmt: skip

    trainer(30).fit(LowRankFactorisation(seeds=[0, 1]), datamodule=data)
    (at_20,) = checkpoints.glob("*step=20*.ckpt")
    model = LowRankFactorisation(seeds=[0, 1])
    trainer(40).fit(model, datamodule=data, ckpt_path=at_20)
    for member, seed in enumerate((0, 1)):
        points = read_run(tmp_path / "run" / f"seed_{seed}").Scalars("train/loss")
        assert [p.step for p in points] == list(range(1, 41))
        assert [p.value for p in points][20:] == pytest.approx(model.curve("train/loss", member)["value"][20:])


class StopAt(pl.Callback):
    """Stops a fit with an error after ``step``, as a crash would, before the epoch's losses are written."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: object) -> None:
        if trainer.global_step >= self.step:
            raise RuntimeError("stopped")


def test_a_run_continued_from_inside_an_epoch_keeps_every_step(tmp_path: Path) -> None:
    """A checkpoint every 30 steps inside epochs of 50, a crash at step 40 before the first epoch's losses were
    written, the run continued from step 30: results and TensorBoard have steps 1..100 once each, equal to an
    uninterrupted run's (steps 1..30 were lost before: the checkpoint held only what had been written)."""
    data = IrisDataModule(preprocessing="centre", steps_per_epoch=50, steps_per_batch=10)
    whole = LowRankFactorisation(seeds=[0, 1])
    fit(whole, data, tmp_path / "whole", steps=100)
    checkpoints = tmp_path / "checkpoints"

    def trainer(*callbacks: pl.Callback) -> pl.Trainer:
        every_30 = pl.callbacks.ModelCheckpoint(checkpoints, "{step}", every_n_train_steps=30, save_top_k=-1)
        return pl.Trainer(
            max_steps=100, accelerator="cpu", logger=TensorBoardLogger(tmp_path, name="", version="run"),
            callbacks=[every_30, *callbacks], enable_progress_bar=False, enable_model_summary=False,
        )  # fmt: skip

    with pytest.raises(RuntimeError, match="stopped"):
        trainer(StopAt(40)).fit(LowRankFactorisation(seeds=[0, 1]), datamodule=data)
    model = LowRankFactorisation(seeds=[0, 1])
    trainer().fit(model, datamodule=data, ckpt_path=checkpoints / "step=30.ckpt", weights_only=True)
    for member, seed in enumerate((0, 1)):
        assert model.curve("train/loss", member) == whole.curve("train/loss", member)
        points = read_run(tmp_path / "run" / f"seed_{seed}").Scalars("train/loss")
        assert [p.step for p in points] == list(range(1, 101))
        assert [p.value for p in points] == pytest.approx(whole.curve("train/loss", member)["value"])
