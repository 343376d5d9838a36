"""The command line: a LightningCLI over the shared DataModule and either exercise's LightningModule.

``python scripts/train.py --config configs/factorise.yaml`` trains one experiment and writes ``results.json``
into the run's log directory; ``main([...])`` is the same from Python (the tests use it).
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from lab2_lightning.atomic import write_json
from lab2_lightning.datamodule import IrisDataModule
from lab2_lightning.errors import LabError

# Imported so that ``--model LowRankFactorisation`` or ``--model LabMLP`` resolves without the module path.
from lab2_lightning.factorisation import LowRankFactorisation  # noqa: F401
from lab2_lightning.mlp import LabMLP  # noqa: F401
from lab2_lightning.progress import StepProgressBar

Accelerator = Literal["cpu", "gpu", "cuda", "mps", "auto"]

# Lightning 2.6 calls jsonargparse APIs that jsonargparse >= 4.49 deprecates; nothing a user can act on.
os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")
# One in-memory full batch per epoch is the lab's design, and the factorisation has nothing to validate, so
# these hints of Lightning's do not apply here.
warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")
warnings.filterwarnings("ignore", message=r".*`val_dataloader` but have no `validation_step`.*")
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
        parser.add_lightning_class_args(StepProgressBar, "progress_bar")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.save_last": True, "checkpoint.every_n_epochs": 1})
        # A link whose target the chosen model does not take is skipped, so both models share these.
        for name in ("n_rows", "n_features", "n_classes", "class_names"):
            parser.link_arguments(f"data.{name}", f"model.init_args.{name}", apply_on="instantiate")

    def before_instantiate_classes(self) -> None:
        config = self.config
        if config.accelerator is not None:
            config.trainer.accelerator = config.accelerator
        check_accelerator(config.trainer.accelerator)

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        """As LightningCLI's, but ``--trainer.enable_progress_bar false`` also drops the epoch progress bar."""
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


def build_cli(args: list[str] | None) -> LabCLI:
    """Parse ``args`` (``None``: the command line); build the DataModule, the model and the Trainer (no training)."""
    return LabCLI(
        model_class=pl.LightningModule,
        subclass_mode_model=True,
        datamodule_class=IrisDataModule,
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"description": "Train one experiment of Lab 2 (see configs/)."},
        args=args,
        run=False,
    )


def train(cli: LabCLI) -> dict[str, Any]:
    """Fit the model, then write ``results.json`` into the run's log directory (rank 0, atomically)."""
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    results = {
        "model": type(cli.model).__name__,
        **cli.model.results(),
        "seed": cli.config.seed_everything,
        "data": str(cli.datamodule.source),
        "settings": json.loads(cli.parser.dump(cli.config, format="json")),
    }
    if cli.trainer.is_global_zero:
        write_json(results_path(cli.trainer), results)
    return results


def results_path(trainer: pl.Trainer) -> Path:
    """``results.json`` in the run's log directory."""
    return Path(trainer.log_dir or trainer.default_root_dir) / "results.json"


def user_error(error: BaseException) -> BaseException | None:
    """The user-facing error behind ``error``, if any: jsonargparse wraps errors raised in ``__init__``."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, (LabError, MisconfigurationException)):
            return cause
        cause = cause.__cause__ or cause.__context__
    return None


def main(args: list[str] | None = None) -> dict[str, Any]:
    """Entry point of ``scripts/train.py``; returns the results. Bad input exits with status 2 and one line."""
    try:
        cli = build_cli(args)
        results = train(cli)
        if cli.trainer.is_global_zero:
            print(f"results: {results_path(cli.trainer)}")
        return results
    except Exception as error:
        cause = user_error(error)
        if cause is None:
            raise
        print(f"error: {cause}", file=sys.stderr)
        raise SystemExit(2) from None
