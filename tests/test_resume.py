"""Continuing a stopped fit with ``--ckpt_path``: the same numbers as an uninterrupted run, in the same folder, and
a refusal of any change to the settings that decide the numbers."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from conftest import FACTORISE_SEEDS, MLP_SEEDS, QUIET, Run, fit, fit_in, working_directory
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

SEEDS = json.dumps(list(FACTORISE_SEEDS))


def _state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def _scalars(folder: Path, tag: str) -> list[tuple[int, float]]:
    """A TensorBoard run's points of ``tag`` as TensorBoard shows them (purges applied, every point kept)."""
    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    accumulator.Reload()
    return [(event.step, event.value) for event in accumulator.Scalars(tag)]


@pytest.fixture(scope="module")
def resumed(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A 1000-step factorisation stopped at 500 steps and continued with ``--ckpt_path last``. Between the two, a
    continuation to 700 steps whose checkpoint is then thrown away (as if the process died before saving it): its
    TensorBoard points past step 500 must be purged by the final continuation."""
    folder = tmp_path_factory.mktemp("resume")
    with working_directory(folder):
        fit("--config", "factorise", "--model.seeds", SEEDS, "--trainer.max_steps", "500")
        last = folder / "lightning_logs/version_0/checkpoints/last.ckpt"
        shutil.copy(last, folder / "step500.ckpt")
        fit("--config", "factorise", "--model.seeds", SEEDS, "--trainer.max_steps", "700", "--ckpt_path", "last")
        shutil.copy(folder / "step500.ckpt", last)
        results = fit(
            "--config", "factorise", "--model.seeds", SEEDS, "--trainer.max_steps", "1000", "--ckpt_path", "last"
        )
    return Run(results, folder, folder / "lightning_logs" / "version_0")


def test_a_resumed_fit_equals_an_uninterrupted_one_bitwise(resumed: Run, factorise_run: Run) -> None:
    """Stopped at 500 steps and continued to 1000: the same final losses, curves (every step from the first) and
    factors, bit for bit, as 1000 steps in one go."""
    assert [r["gd_loss"] for r in resumed.results["runs"]] == [r["gd_loss"] for r in factorise_run.results["runs"]]
    assert resumed.results["curves"] == factorise_run.results["curves"]
    resumed_state, state = _state(resumed.checkpoint), factorise_run.state_dict()
    for member in range(len(FACTORISE_SEEDS)):
        assert torch.equal(resumed_state[f"U.{member}"], state[f"U.{member}"])
        assert torch.equal(resumed_state[f"V.{member}"], state[f"V.{member}"])


def test_a_resumed_fit_continues_from_its_checkpoint(resumed: Run, factorise_run: Run) -> None:
    """The continuation keeps the stopped run's first 500 curve points exactly and ends at the uninterrupted run's
    losses (to 1e-9; see the bitwise test above for the last bits)."""
    for resumed_curve, curve in zip(
        resumed.results["curves"]["train"], factorise_run.results["curves"]["train"], strict=True
    ):
        assert len(resumed_curve) == 1000
        assert resumed_curve[:500] == curve[:500]
        assert resumed_curve == pytest.approx(curve, rel=1e-8)
    for resumed_run, run in zip(resumed.results["runs"], factorise_run.results["runs"], strict=True):
        assert resumed_run["steps"] == 1000
        assert resumed_run["gd_loss"] == pytest.approx(run["gd_loss"], rel=1e-9)


def test_a_resumed_fit_writes_into_its_own_folder(resumed: Run) -> None:
    """The continuation writes into the stopped run's version_0 (no version_1), and its results.json is the final
    one."""
    assert sorted(p.name for p in (resumed.cwd / "lightning_logs").iterdir()) == ["version_0"]
    written = resumed.written()
    assert written["runs"] == resumed.results["runs"]
    assert written["runs"][0]["steps"] == 1000


def test_tensorboard_shows_each_step_once_in_a_run(factorise_run: Run) -> None:
    """An uninterrupted run's TensorBoard curve has each logged step (every 10th) exactly once."""
    steps = [step for step, _ in _scalars(factorise_run.run_dir / "seed_0", "summed_squared_error/train")]
    assert steps == list(range(10, 1001, 10))


def test_tensorboard_shows_each_step_once_after_a_resume(resumed: Run) -> None:
    """After the resumes, the TensorBoard curve has every logged step exactly once."""
    steps = [step for step, _ in _scalars(resumed.run_dir / "seed_0", "summed_squared_error/train")]
    assert steps == list(range(10, 1001, 10))


@pytest.mark.parametrize("member", range(len(FACTORISE_SEEDS)))
def test_tensorboard_purges_what_a_stopped_continuation_wrote(resumed: Run, factorise_run: Run, member: int) -> None:
    """The points the abandoned continuation wrote past the checkpoint (steps 510-700) are purged by the final
    continuation: every step after the checkpoint is shown once, with the curve's values, and no step is missing."""
    points = _scalars(resumed.run_dir / f"seed_{FACTORISE_SEEDS[member]}", "summed_squared_error/train")
    steps = [step for step, _ in points]
    assert set(steps) == set(range(10, 1001, 10))
    after = [(step, value) for step, value in points if 500 < step < 1000]
    assert [step for step, _ in after] == list(range(510, 1000, 10))
    curve = resumed.results["curves"]["train"][member]
    assert [value for _, value in after] == pytest.approx([curve[step - 1] for step, _ in after], rel=1e-6)


def test_an_mlp_resumed_equals_an_uninterrupted_one(tmp_path: Path, mlp_run: Run) -> None:
    """The MLP stopped at 50 steps and continued to 100 has the uninterrupted run's weights and validation numbers."""
    seeds = json.dumps(list(MLP_SEEDS))
    fit("--config", "mlp", "--model.seeds", seeds, "--trainer.max_steps", "50")
    results = fit("--config", "mlp", "--model.seeds", seeds, "--ckpt_path", "last")
    state, expected = _state(tmp_path / "lightning_logs/version_0/checkpoints/last.ckpt"), mlp_run.state_dict()
    assert state.keys() == expected.keys()
    for name in state:
        assert torch.equal(state[name], expected[name]), name
    assert results["runs"] == mlp_run.results["runs"]
    assert results["curves"] == mlp_run.results["curves"]


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A factorisation stopped after 200 of its steps."""
    return fit_stopped(tmp_path_factory.mktemp("stopped"))


def fit_stopped(folder: Path) -> Run:
    with working_directory(folder):
        results = fit("--config", "factorise", "--trainer.max_steps", "200")
    return Run(results, folder, folder / "lightning_logs" / "version_0")


@pytest.mark.parametrize(
    ("change", "setting"),
    [
        (["--data.split_seed", "3"], "split_seed"),
        (["--data.init_args.split_seed", "3"], "split_seed"),
        (["--data.preprocessing", "standardise"], "preprocessing"),
        (["--model.lr", "0.005"], "lr"),
        (["--model.rank", "3"], "rank"),
        (["--seed_everything", "3"], "seed_everything"),
        (["--trainer.precision", "32-true"], "precision"),
    ],
)
def test_a_resume_that_changes_a_setting_is_refused_naming_it(
    fails: Callable[..., str], stopped: Run, change: list[str], setting: str
) -> None:
    """Continuing a run with another split seed, preprocessing, lr, rank, seed or precision exits 2 naming the
    setting; the stopped run's checkpoint is left as it was."""
    before = stopped.checkpoint.read_bytes()
    line = fails("fit", "--config", "factorise", "--ckpt_path", str(stopped.checkpoint), *change, *QUIET)
    assert setting in line
    assert stopped.checkpoint.read_bytes() == before
    assert not (stopped.cwd / "lightning_logs" / "version_1").exists()


def test_a_resume_on_another_data_file_is_refused(fails: Callable[..., str], stopped: Run, tmp_path: Path) -> None:
    """Continuing a run on a data file of other content exits 2 naming the data."""
    rows = (Path(__file__).parents[1] / "lab2_lightning/data/iris.data").read_text().splitlines()[:-3]
    (tmp_path / "fewer.csv").write_text("\n".join(rows) + "\n")
    line = fails("fit", "--config", "factorise", "--ckpt_path", str(stopped.checkpoint), "--data.path", "fewer.csv")
    assert "data" in line


def test_ckpt_path_last_without_runs_is_refused(fails: Callable[..., str]) -> None:
    """``--ckpt_path last`` where no run has a checkpoint exits 2 naming --ckpt_path."""
    line = fails("fit", "--config", "factorise", "--ckpt_path", "last")
    assert "--ckpt_path" in line
    assert "last" in line


def test_a_file_that_is_not_a_checkpoint_is_refused(fails: Callable[..., str], tmp_path: Path) -> None:
    """``--ckpt_path`` of a text file exits 2 naming the file."""
    (tmp_path / "notes.ckpt").write_text("not a checkpoint\n")
    line = fails("fit", "--config", "factorise", "--ckpt_path", "notes.ckpt")
    assert "notes.ckpt" in line


def test_a_checkpoint_of_another_program_is_refused(fails: Callable[..., str], tmp_path: Path) -> None:
    """A torch checkpoint that no lab2 run wrote exits 2 naming the file."""
    torch.save({"state_dict": {"U.0": torch.zeros(150, 2)}}, tmp_path / "foreign.ckpt")
    line = fails("fit", "--config", "factorise", "--ckpt_path", "foreign.ckpt")
    assert "foreign.ckpt" in line


def test_a_missing_checkpoint_is_refused(fails: Callable[..., str]) -> None:
    """``--ckpt_path`` of a file that does not exist exits 2 naming it."""
    line = fails("fit", "--config", "factorise", "--ckpt_path", "gone.ckpt")
    assert "gone.ckpt" in line


def test_metrics_csv_keeps_every_step_after_a_resume(resumed: Run) -> None:
    """After the resumes, the run's metrics.csv has every logged training step (10, 20, ..., 1000) exactly once."""
    with (resumed.run_dir / "metrics.csv").open() as file:
        rows = list(csv.DictReader(file))
    steps = [int(row["step"]) for row in rows if row.get("seed_0/summed_squared_error/train")]
    assert steps == list(range(10, 1001, 10))


def test_a_stopped_run_resumed_past_its_new_max_steps_keeps_its_metrics(tmp_path: Path) -> None:
    """A run stopped at step 300 (its checkpoint written, its results not) and continued with a smaller
    ``max_steps``: Lightning has no step left to take, so the results are those of the checkpoint's step, and
    metrics.csv, which Lightning's CSVLogger starts afresh, still has every logged step."""
    with working_directory(tmp_path):
        fit("--config", "factorise", "--trainer.max_steps", "300")
        run_dir = tmp_path / "lightning_logs" / "version_0"
        (run_dir / "results.json").unlink()  # as if stopped before its results
        results = fit("--config", "factorise", "--trainer.max_steps", "100", "--ckpt_path", "last")
    assert results["runs"][0]["steps"] == 300
    with (run_dir / "metrics.csv").open() as file:
        rows = list(csv.DictReader(file))
    steps = [int(row["step"]) for row in rows if row.get("seed_0/summed_squared_error/train")]
    assert steps == list(range(10, 301, 10))


def test_early_stopping_resumes_exactly(tmp_path: Path) -> None:
    """With Lightning's EarlyStopping on the hidden entries' RMSE (the README's recipe), a run stopped at step 200
    and continued stops where a run never stopped does (step 400), with its numbers: the resumed run ends the
    checkpoint's epoch again, and early stopping counts it once."""
    stopping = ["--config", "complete", "--trainer.callbacks+=EarlyStopping", "--trainer.callbacks.monitor",
                "hidden_rmse", "--trainer.callbacks.patience", "3"]  # fmt: skip
    straight = fit_in(tmp_path / "straight", *stopping).results["runs"][0]
    with working_directory(tmp_path / "stopped"):
        fit(*stopping, "--trainer.max_steps", "200")
        resumed = fit(*stopping, "--ckpt_path", "last")["runs"][0]
    assert straight["steps"] == resumed["steps"] == 400
    assert resumed["gd_loss"] == straight["gd_loss"] and resumed["hidden_rmse"] == straight["hidden_rmse"]


def test_a_precision_spelled_otherwise_is_the_same_run(tmp_path: Path) -> None:
    """``--trainer.precision 64`` is Lightning's ``64-true``: a run started with one resumes with the other."""
    fit("--config", "factorise", "--trainer.precision", "64", "--trainer.max_steps", "100")
    assert fit("--config", "factorise", "--trainer.max_steps", "200", "--ckpt_path", "last")["runs"][0]["steps"] == 200


def test_a_resume_that_clips_the_gradient_is_refused(fails: Callable[..., str], tmp_path: Path) -> None:
    """Gradient clipping changes the steps, so it is part of the run: a resume that adds it exits 2 naming it."""
    fit("--config", "mlp", "--trainer.max_steps", "10")
    line = fails("fit", "--config", "mlp", "--trainer.max_steps", "20", "--trainer.gradient_clip_val", "0.01",
                 "--ckpt_path", "last", *QUIET)  # fmt: skip
    assert "trainer.gradient_clip_val is 0.01 here but None" in line
