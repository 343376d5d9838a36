"""Two processes (Lightning's DDP on CPU) give the one-process numbers: each holds half the rows (or half the
entries of a sparse matrix), and the summed gradient is the lab's full-batch one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import QUIET, fit, plain_factors, subprocess_env, summed_squared_error, working_directory
from lightning.pytorch.utilities import rank_zero_only

from lab2_lightning.data import SyntheticDataModule, TableDataModule
from lab2_lightning.data.datamodule import FullBatchDataModule
from lab2_lightning.errors import LabError

TIMEOUT = 75  # a quiet 2-core machine takes about 22 s, most of it starting the two processes
COMMAND = ["fit", "--config", "factorise", "--model.seeds", "[0,1]", "--trainer.max_steps", "200"]


SPARSE = [
    "fit", "--config", "complete", "--data", "lab2_lightning.data.SyntheticDataModule", "--data.rows", "300",
    "--data.cols", "40", "--data.rank", "3", "--data.entries", "3000", "--data.holdout", "0.1",
    "--data.steps_per_epoch", "50", "--model.rank", "3", "--model.lr", "auto", "--model.seeds", "[0,1]",
    "--trainer.max_steps", "200",
]  # fmt: skip
DDP = ["--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu", *QUIET]


def run_ddp(cwd: Path, command: list[str]) -> dict:
    """``lab2 COMMAND`` on two processes in a fresh interpreter; its results.json."""
    # A session of its own, so that a hang ends with both processes (the launcher starts the second one).
    process = subprocess.Popen(
        [sys.executable, "-m", "lab2_lightning", *command], cwd=cwd, env=subprocess_env(),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        output, _ = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"DDP did not finish in {TIMEOUT} s:\n{output[-3000:]}")
    assert process.returncode == 0, output[-3000:]
    assert sorted(p.name for p in (cwd / "lightning_logs").iterdir()) == ["version_0"]
    return json.loads((cwd / "lightning_logs/version_0/results.json").read_text())


@pytest.mark.skipif(sys.platform != "linux", reason="DDP on CPU with gloo, as tested on Linux")
def test_ddp_on_two_cpu_processes_equals_one_process(tmp_path: Path) -> None:
    """``--trainer.devices 2 --trainer.strategy ddp`` ends at the one-device losses (to 1e-9), and the second process
    writes into the first one's run folder, not a folder of its own."""
    results = run_ddp(tmp_path, [*COMMAND, *DDP])
    for member, seed in enumerate((0, 1)):
        run = results["runs"][member]
        assert (run["seed"], run["steps"]) == (seed, 200)
        expected = summed_squared_error(*plain_factors(seed, steps=200))
        assert run["gd_loss"] == pytest.approx(expected, rel=0, abs=1e-9)
        assert len(results["curves"]["train"][member]) == 200


@pytest.mark.skipif(sys.platform != "linux", reason="DDP on CPU with gloo, as tested on Linux")
def test_ddp_shares_a_sparse_matrix_entries_with_the_numbers_of_one_process(tmp_path: Path) -> None:
    """A completion of triples on two processes, each with half the entries (and of the hidden ones) and all of U
    and V: the losses, hidden-entry RMSE and yardsticks of one process, to rounding."""
    two = run_ddp(tmp_path, [*SPARSE, *DDP])
    with working_directory(tmp_path / "one"):
        one = fit(*SPARSE[1:])
    for a, b in zip(two["runs"], one["runs"], strict=True):
        for key in ("gd_loss", "hidden_rmse", "lr", "column_mean_rmse", "hard_impute_rmse"):
            assert a[key] == pytest.approx(b[key], rel=1e-9), key


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="DDP on CPU with gloo, as tested on Linux")
def test_torchrun_starts_every_process_in_one_run_folder(tmp_path: Path) -> None:
    """Under torchrun every process starts at once: the first claims the run's folder and names it for the others
    (and removes that note once all have joined); the numbers are one process's."""
    command = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "lab2_lightning"]
    done = subprocess.run(
        [sys.executable, *command, *SPARSE, *DDP], cwd=tmp_path, env=subprocess_env(), capture_output=True,
        text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "lightning_logs").iterdir()) == ["version_0"]
    two = json.loads((tmp_path / "lightning_logs/version_0/results.json").read_text())
    with working_directory(tmp_path / "one"):
        one = fit(*SPARSE[1:])
    for a, b in zip(two["runs"], one["runs"], strict=True):
        assert a["gd_loss"] == pytest.approx(b["gd_loss"], rel=1e-9)


def as_process(data: FullBatchDataModule, rank: int, world: int) -> FullBatchDataModule:
    """``data`` set up as process ``rank`` of ``world`` would set it up (what setup reads of the Trainer)."""
    data.trainer = SimpleNamespace(
        global_rank=rank, world_size=world, is_global_zero=rank == 0, precision="64-true",
        strategy=SimpleNamespace(root_device=torch.device("cpu")), max_steps=10,
    )  # fmt: skip
    data.setup("fit")
    return data


@pytest.mark.parametrize(("gaps", "holdout", "val_size"), [(0.0, 0.0, 0), (0.05, 0.2, 0), (0.05, 0.2, 41)])
def test_a_process_other_than_the_first_holds_only_its_share(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gaps: float, holdout: float, val_size: int
) -> None:
    """The second of two processes normalises only its half of the training rows, straight from the memory-mapped
    file, bit for bit as the first process's whole matrix has them (hidden entries included), and keeps nothing
    else; predict numbers its rows in the whole matrix."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((301, 7)).astype(np.float32)
    A[rng.random(A.shape) < gaps] = np.nan
    np.save(tmp_path / "A.npy", A)
    options = {"path": str(tmp_path / "A.npy"), "label_column": None, "allow_missing": True, "holdout": holdout,
               "val_size": val_size}  # fmt: skip
    first = as_process(TableDataModule(**options), 0, 2)
    monkeypatch.setattr(rank_zero_only, "rank", 1)  # what Lightning's launcher says to the process it starts
    second = TableDataModule(**options)
    assert second.train_x is None  # nothing normalised before setup
    for name in ("shift", "scale"):
        assert torch.equal(getattr(second, name), getattr(first, name))
    as_process(second, 1, 2)
    n = first.n_rows
    half = first.train_x[n // 2 :]
    assert second.features is None and second.train_x.shape == half.shape
    assert torch.equal(second.train_x.isnan(), half.isnan())
    assert torch.equal(second.train_x.nan_to_num(), half.nan_to_num())
    assert second.train_x.untyped_storage().nbytes() == half.numel() * 4  # its own half, not a view of a whole
    assert torch.equal(second.batches["train"]["x"].nan_to_num(), half.double().nan_to_num())
    hidden = first.hidden.select(slice(len(first.hidden) // 2, None))
    assert torch.equal(second.hidden.row, hidden.row) and torch.equal(second.hidden.value, hidden.value)
    fill, its_fill = first.predict_dataloader().batch, second.predict_dataloader().batch
    assert torch.equal(its_fill["row"], fill["row"][fill["row"] >= n // 2])
    alone = as_process(TableDataModule(**options), 0, 1)  # a stray LOCAL_RANK=1 around a one-process run
    assert torch.equal(alone.train_x.nan_to_num(), first.train_x.nan_to_num())
    with pytest.raises(LabError, match="holds one process's share"):
        as_process(second, 1, 3)  # reused by a Trainer of another size


def test_a_process_other_than_the_first_keeps_only_its_share_of_the_entries() -> None:
    """Triples: the second process keeps its half of the training and of the hidden entries, as copies."""
    options = {"rows": 60, "cols": 20, "rank": 2, "entries": 500, "holdout": 0.1}
    first = SyntheticDataModule(**options)
    second = as_process(SyntheticDataModule(**options), 1, 2)
    assert len(second.entries) == 450 - 225 and len(second.hidden) == 25
    assert torch.equal(second.entries.value, first.entries.value[225:])
    assert second.entries.value.untyped_storage().nbytes() == 225 * 8


def test_too_few_hidden_entries_for_the_processes_are_named() -> None:
    """Each process measures its share of the hidden entries, so there must be one each: fewer are refused, naming
    them (not the rows, which suffice)."""
    data = SyntheticDataModule(rows=60, cols=20, rank=2, entries=500, holdout=0.002)  # 1 hidden entry
    with pytest.raises(LabError, match="1 hidden entries cannot be shared between 2 processes"):
        as_process(data, 0, 2)
