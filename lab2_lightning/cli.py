"""The command line: a LightningCLI over the shared DataModule and either exercise's LightningModule.

``python scripts/train.py --config configs/factorise.yaml`` trains one experiment and writes ``results.json``
into the run's log directory; ``main([...])`` is the same from Python (the tests use it).
"""

from __future__ import annotations

import os

# The process-wide settings, made once by this entry point before torch loads (see configure_process).
# MKL, PyTorch's BLAS/LAPACK on x86 CPUs, picks code paths by the memory alignment of its inputs, so the last bits
# of a result can change from one process to the next. Conditional numerical reproducibility pins the path (at a
# few percent of speed), which makes CPU runs bitwise repeatable. It must be set before torch first calls MKL.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

import json
import math
import signal
import sys
import warnings
from argparse import ArgumentError
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import matplotlib
import torch
from jsonargparse import Namespace
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lab2_lightning.callbacks.progress import StepProgressBar
from lab2_lightning.callbacks.summary import RunSummary
from lab2_lightning.data.datamodule import IrisDataModule
from lab2_lightning.models.checkpoints import check_fits

# Imported so that ``--model LowRankFactorisation`` or ``--model LabMLP`` resolves without the module path.
from lab2_lightning.models.factorisation import LowRankFactorisation  # noqa: F401
from lab2_lightning.models.full_batch import DivergenceError
from lab2_lightning.models.mlp import LabMLP  # noqa: F401
from lab2_lightning.utils.atomic import write_json
from lab2_lightning.utils.errors import LabError, exit_on_user_error

Accelerator = Literal["cpu", "gpu", "cuda", "mps", "auto"]


def configure_process() -> None:
    """The process-wide settings of a run: a headless matplotlib backend, and Lightning's hints that do not apply."""
    matplotlib.use("Agg")
    # One in-memory full batch per epoch is the lab's design, and the factorisation has nothing to validate, so
    # these hints of Lightning's do not apply here.
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=r".*`val_dataloader` but have no `validation_step`.*")
    warnings.filterwarnings("ignore", message=r".*`IterableDataset` has `__len__` defined.*")
    # The MLP logs torchmetrics results, which torchmetrics has already summed over the ranks.
    warnings.filterwarnings("ignore", message=r".*It is recommended to use `self.log\(.*sync_dist=True\)`.*")
    # main() always hands LightningCLI its arguments explicitly, also when they came from the command line.
    warnings.filterwarnings("ignore", message=r"LightningCLI's args parameter is intended")
    # Lightning 2.6 on torch >= 2.10 warns about its own use of torch's pytree API; nothing a user can act on.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")


class LabCLI(LightningCLI):
    """LightningCLI with the data's sizes linked into the model and a top-level ``--accelerator``."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--accelerator",
            type=Accelerator | None,
            default=None,
            help="Shorthand for --trainer.accelerator (cpu, gpu, auto, ...); wins over it when both are given.",
        )
        parser.add_argument(
            "--ckpt_path",
            type=str | None,
            default=None,
            help="Resume training from this checkpoint. 'last': the newest last.ckpt under "
            "<trainer.default_root_dir>/lightning_logs, continuing in that run's directory.",
        )
        parser.add_lightning_class_args(StepProgressBar, "progress_bar")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.save_last": True, "checkpoint.every_n_epochs": 1})
        # A link whose target the chosen model does not take is skipped, so both models share these.
        for name in ("n_rows", "n_features", "n_classes", "class_names", "feature_names"):
            parser.link_arguments(f"data.{name}", f"model.init_args.{name}", apply_on="instantiate")

    def before_instantiate_classes(self) -> None:
        config = self.config
        if config.accelerator is not None:
            config.trainer.accelerator = config.accelerator
        check_accelerator(config.trainer.accelerator)
        check_length(config.trainer.max_steps, config.trainer.max_epochs)
        if config.ckpt_path == "last":
            resume_last(config)

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        """As LightningCLI's, but ``--trainer.enable_progress_bar false`` also drops the step progress bar."""
        trainer_config = {**self._get(self.config_init, "trainer", default={}), **kwargs}
        callbacks = [self._get(self.config_init, key) for key in self._parser(self.subcommand).callback_keys]
        if trainer_config.get("enable_progress_bar") is False:
            callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
        return self._instantiate_trainer(trainer_config, callbacks)


def check_accelerator(accelerator: Any) -> None:
    """Refuse a GPU where there is none, in one line, before Lightning builds a Trainer."""
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise LabError(
            f"--accelerator {accelerator} was asked for, but PyTorch sees no CUDA GPU "
            f"(torch {torch.__version__}); use --accelerator cpu or auto"
        )


def check_length(max_steps: int, max_epochs: int | None) -> None:
    """A run must take at least one step: the lab's epochs are ``trainer.max_steps``."""
    if max_steps == 0 or max_steps < -1:
        raise LabError(f"trainer.max_steps (the lab's epochs) must be at least 1, got {max_steps}")
    if max_epochs is not None and (max_epochs == 0 or max_epochs < -1):
        raise LabError(f"trainer.max_epochs must be at least 1 (or -1 for no limit), got {max_epochs}")


def resume_last(config: Any) -> None:
    """Turn ``--ckpt_path last`` into the newest ``last.ckpt`` of the default log directory, and log the resumed
    run into that same run directory (Lightning's own ``last`` looks only in the new run's directory)."""
    root = Path(config.trainer.default_root_dir or ".")
    candidates = sorted(root.glob("lightning_logs/*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise LabError(f"--ckpt_path last: no {root / 'lightning_logs/*/checkpoints/last.ckpt'} to resume from")
    config.ckpt_path = str(candidates[-1])
    if config.trainer.logger in (None, True):
        config.trainer.logger = Namespace(
            class_path="lightning.pytorch.loggers.TensorBoardLogger",
            init_args=Namespace(save_dir=str(root), name="lightning_logs", version=candidates[-1].parents[1].name),
        )


def build_cli(args: list[str] | None) -> LabCLI:
    """Parse ``args`` (``None``: the command line); build the DataModule, the model and the Trainer (no training)."""
    return LabCLI(
        model_class=pl.LightningModule,
        subclass_mode_model=True,
        datamodule_class=IrisDataModule,
        seed_everything_default=0,
        # Every run gathers its members' results and HParams rows; not an option, since results.json needs it.
        trainer_defaults={"callbacks": [RunSummary()]},
        save_config_kwargs={"overwrite": True},
        # Parse errors are raised, not printed with the whole usage text: main() prints them in one line.
        parser_kwargs={"description": "Train one experiment of Lab 2 (see configs/).", "exit_on_error": False},
        args=args,
        run=False,
    )


def train(cli: LabCLI) -> dict[str, Any]:
    """Fit the model (resuming from ``--ckpt_path``), then write ``results.json`` into the run's log directory
    (rank 0, atomically). A run that fails or diverges raises before anything is written."""
    ckpt_path = cli.config.ckpt_path
    if ckpt_path is not None:
        check_fits(ckpt_path, cli.model)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt_path, weights_only=True)
    runs = next(c for c in cli.trainer.callbacks if isinstance(c, RunSummary)).runs
    bad = non_finite(runs)
    if bad:  # the last step itself can break the weights, after the last check of a loss
        raise DivergenceError(f"training diverged: {', '.join(bad[:3])} not finite after the last step; lower model.lr")
    results = {
        "model": type(cli.model).__name__,
        "runs": runs,
        "seed": cli.config.seed_everything,
        "data": str(cli.datamodule.source),
        "settings": json.loads(cli.parser.dump(cli.config, format="json")),
    }
    path = results_path(cli.trainer)  # on every rank: under DDP, finding the log directory is a collective call
    if cli.trainer.is_global_zero:
        write_json(path, results)
    return results


def non_finite(results: Any, key: str = "") -> list[str]:
    """The keys (dotted) of the NaN or infinite numbers in ``results``."""
    if isinstance(results, dict):
        return [bad for k, v in results.items() for bad in non_finite(v, f"{key}.{k}" if key else str(k))]
    if isinstance(results, list):
        return [bad for v in results for bad in non_finite(v, key)]
    return [key] if isinstance(results, float) and not math.isfinite(results) else []


def results_path(trainer: pl.Trainer) -> Path:
    """``results.json`` in the run's log directory."""
    return Path(trainer.log_dir or trainer.default_root_dir) / "results.json"


_NOISE = ("Does not validate against", "Subtypes:", "Errors:", "Expected a <class 'NoneType'>", "Given value")


def one_line(message: str) -> str:
    """jsonargparse's multi-line account of a bad option, as one line: the path to the problem and the problem."""
    parts = [line.strip().removeprefix("- ") for line in message.splitlines()]
    return " ".join(part for part in parts if part and not part.startswith(_NOISE))


def user_error(error: BaseException) -> str | None:
    """The one-line message of the user-facing error behind ``error``, if any (jsonargparse wraps errors raised in
    ``__init__``); ``None`` for a bug, which keeps its traceback."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, (LabError, MisconfigurationException)):
            return one_line(str(cause))
        if isinstance(cause, ArgumentError):
            return f"{one_line(str(cause))} (see --help)"
        cause = cause.__cause__ or cause.__context__
    return None


def main(args: list[str] | None = None) -> dict[str, Any]:
    """Entry point of ``scripts/train.py``; returns the results. Bad input exits with status 2 and one line."""
    try:
        return _main(args)
    finally:
        # Lightning leaves a DDP process group up; gloo's threads then abort the interpreter's exit.
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _main(args: list[str] | None) -> dict[str, Any]:
    configure_process()
    try:
        with exit_on_user_error(user_error):
            cli = build_cli(args)
            results = train(cli)
            path = results_path(cli.trainer)  # every rank takes part in finding it
    except SIGTERMException:
        print("error: stopped by SIGTERM; resume with --ckpt_path last (same options)", file=sys.stderr)
        raise SystemExit(128 + signal.SIGTERM) from None
    if cli.trainer.is_global_zero:
        print(f"results: {path}")
    return results
