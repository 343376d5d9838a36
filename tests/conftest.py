"""Shared set-up: the environment the entry point sets before torch loads, the ``lab2`` runner, the one-error-line
checker, the plain-loop oracles, and the expensive runs that several test files read (each made once per session)."""

from __future__ import annotations

import os

# What lab2_lightning.main sets before torch loads: MKL's reproducible mode, so the plain loops computed here and
# the runs agree bit for bit. It must be in the environment before the first `import torch`.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")

import matplotlib

matplotlib.use("Agg")

import contextlib
import functools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from lab2_lightning.data import TableDataModule
from lab2_lightning.main import main
from lab2_lightning.models.reference import gd_factorise_ad, sgd_mlp

# The CLI runs Iris-sized data on one thread (--threads auto); the oracles must use the same count to agree bitwise.
torch.set_num_threads(1)

QUIET = ("--trainer.enable_progress_bar", "false")
REPO = Path(__file__).resolve().parents[1]
IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def lab2(*args: str) -> Any:
    """``lab2 ARGS`` in this process: what the command returns (a fit's results, a whole lab's results)."""
    return main(list(args))


def fit(*args: str) -> dict[str, Any]:
    """``lab2 fit ARGS`` without the progress bar."""
    return lab2("fit", *args, *QUIET)


@contextlib.contextmanager
def working_directory(path: Path) -> Iterator[Path]:
    """Run the body in ``path`` (runs write ``lightning_logs/`` into the working directory)."""
    before = Path.cwd()
    path.mkdir(parents=True, exist_ok=True)
    os.chdir(path)
    try:
        yield path
    finally:
        os.chdir(before)


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test runs in its own empty working directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def error_line(err: str) -> str:
    """The one ``error:`` line of a failed command's stderr: it must be the last line, the only one, with no
    traceback before it."""
    assert "Traceback" not in err, err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert errors == lines[-1:], lines[-5:]
    return lines[-1]


@pytest.fixture
def fails(capsys: pytest.CaptureFixture[str]) -> Callable[..., str]:
    """Run ``lab2 ARGS`` expecting a user error: asserts exit status 2 and one ``error:`` line; returns the line."""

    def run(*args: str, code: int = 2) -> str:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            main(list(args))
        assert exit_info.value.code == code
        return error_line(capsys.readouterr().err)

    return run


# ----------------------------------------------------------------------------------------------------------------
# The oracles: the lab's plain loops on the DataModule's own matrices.


@functools.cache
def iris_centred() -> torch.Tensor:
    """Exercise 1's matrix as the runs see it (float64, C-contiguous, mean-centred)."""
    return TableDataModule().train_x


@functools.cache
def mlp_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exercise 2's split as ``--config mlp`` makes it, the features in float32."""
    data = TableDataModule(preprocessing="divide_by_variance", stats_rows="all", val_size=50, split_seed=0)
    return data.train_x.float(), data.train_y, data.val_x.float(), data.val_y


@functools.cache
def plain_factors(seed: int, rank: int = 2, steps: int = 1000, lr: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:
    """``gd_factorise_ad`` after ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    return gd_factorise_ad(iris_centred(), rank, num_epochs=steps, lr=lr)


@functools.cache
def plain_mlp(seed: int, reduction: str = "sum", steps: int = 100) -> dict[str, torch.Tensor]:
    """``sgd_mlp`` after ``torch.manual_seed(seed)`` on the training split of ``--config mlp``."""
    x, y, _, _ = mlp_data()
    torch.manual_seed(seed)
    return sgd_mlp(x, y, num_epochs=steps, reduction=reduction)


def summed_squared_error(U: torch.Tensor, V: torch.Tensor) -> float:
    """The lab's loss of factors U, V on the centred Iris matrix."""
    return float(torch.nn.functional.mse_loss(U @ V.T, iris_centred(), reduction="sum"))


# ----------------------------------------------------------------------------------------------------------------
# Runs shared by several tests.


@dataclass(frozen=True)
class Run:
    """A finished fit: its results (as returned and as written) and its folder."""

    results: dict[str, Any]
    cwd: Path
    run_dir: Path

    @property
    def checkpoint(self) -> Path:
        return self.run_dir / "checkpoints" / "last.ckpt"

    def state_dict(self) -> dict[str, torch.Tensor]:
        return torch.load(self.checkpoint, map_location="cpu", weights_only=False)["state_dict"]

    def written(self) -> dict[str, Any]:
        return json.loads((self.run_dir / "results.json").read_text())


def fit_in(folder: Path, *args: str) -> Run:
    """``lab2 fit ARGS`` in a fresh ``folder``; its run is the folder's first, version_0."""
    with working_directory(folder):
        results = fit(*args)
    return Run(results, folder, folder / "lightning_logs" / "version_0")


FACTORISE_SEEDS = (0, 1, 2)
MLP_SEEDS = (0, 1, 2)


@pytest.fixture(scope="session")
def factorise_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """``lab2 fit --config factorise --model.seeds [0,1,2]``: the lab's 1000 steps at rank 2."""
    seeds = json.dumps(list(FACTORISE_SEEDS))
    return fit_in(tmp_path_factory.mktemp("factorise"), "--config", "factorise", "--model.seeds", seeds)


@pytest.fixture(scope="session")
def mlp_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """``lab2 fit --config mlp --model.seeds [0,1,2]``: the lab's 100 steps of the 4-12-3 MLP."""
    return fit_in(tmp_path_factory.mktemp("mlp"), "--config", "mlp", "--model.seeds", json.dumps(list(MLP_SEEDS)))


@dataclass(frozen=True)
class Lab:
    """A finished whole lab: its results and folders."""

    results: dict[str, Any]
    cwd: Path
    out: Path

    @property
    def lab_dir(self) -> Path:
        return self.cwd / "lightning_logs" / "lab" / "version_0"


@pytest.fixture(scope="session")
def lab_run(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    """``lab2 --seeds 2 --out reports``, uninterrupted."""
    folder = tmp_path_factory.mktemp("lab")
    with working_directory(folder):
        results = lab2("--seeds", "2", "--out", "reports")
    return Lab(results, folder, folder / "reports")


def numbers(results: dict[str, Any]) -> dict[str, Any]:
    """A whole lab's results without what differs from run to run of the same numbers (time, machine, folders)."""
    return {key: value for key, value in results.items() if key not in ("wall_time_s", "environment", "settings")}


# ----------------------------------------------------------------------------------------------------------------
# Fresh interpreters (slow: seconds each to import torch and Lightning).


def subprocess_env() -> dict[str, str]:
    """The environment of a ``lab2`` subprocess: this one's, without what an earlier in-process run left behind."""
    env = {key: value for key, value in os.environ.items() if key not in ("LAB2_RUN_DIR", "LOCAL_RANK")}
    env["PYTHONUNBUFFERED"] = "1"
    return env
