"""One experiment through LightningCLI: the CLI class, its checks, and the results a fit leaves in results.json.

:mod:`lab2_lightning.cli` runs it for ``fit``, ``validate``, ``test`` and ``predict``; the whole lab
(:mod:`~lab2_lightning.lab.sweep`) builds its trainings with it, from the same configs.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sys
from argparse import ArgumentError
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from jsonargparse import ActionConfigFile, ArgumentParser, Namespace
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities.model_helpers import is_overridden

from lab2_lightning import configs
from lab2_lightning.callbacks.final_checkpoint import FinalCheckpoint
from lab2_lightning.callbacks.prediction_writer import PredictionWriter
from lab2_lightning.callbacks.progress import StepProgressBar
from lab2_lightning.callbacks.stop_note import StopNote
from lab2_lightning.callbacks.summary import RunSummary
from lab2_lightning.data.datamodule import IrisDataModule, step_grid
from lab2_lightning.lab.devices import check_accelerator, check_plugins, check_strategy, trainer_refusal
from lab2_lightning.lab.lab_folder import lock
from lab2_lightning.lab.resume import (
    LOGS,
    Resume,
    check_same_data,
    check_unfinished,
    describe,
    newest_last_checkpoint,
    plan_resume,
)
from lab2_lightning.lab.run_folder import claim_version
from lab2_lightning.lab.trained_on import TrainedOn
from lab2_lightning.models.checkpoints import check_fits, checkpoint_model_name, load_checkpoint

# Imported so that ``--model LowRankFactorisation`` or ``--model LabMLP`` resolves without the module path.
from lab2_lightning.models.factorisation import LowRankFactorisation  # noqa: F401
from lab2_lightning.models.full_batch import DivergenceError
from lab2_lightning.models.mlp import LabMLP
from lab2_lightning.utils.atomic import write_json
from lab2_lightning.utils.errors import LabError
from lab2_lightning.utils.folders import writable_folder
from lab2_lightning.utils.threads import threads_for

Accelerator = Literal["cpu", "gpu", "cuda", "mps", "auto"]


SUBCOMMANDS = tuple(LightningCLI.subcommands())  # fit, validate, test, predict: Lightning's own list


# ckpt_path values that Lightning resolves itself; any other value is a file, checked before Lightning reads it
# ("last" is turned into one, "best" refused: see parse_arguments).
LIGHTNING_CHECKPOINT_NAMES = ("hpc",)


# The data sizes the models take from the data (a model that lacks one of these arguments does not get it).
DATA_LINKS = ("n_rows", "n_features", "n_classes", "class_names", "feature_names")


CONFIG_NAME = re.compile(r"[\w-]+(\.yaml)?")


def resolve_config(value: str) -> str:
    """``--config``'s value: a file that exists, else a packaged config of that name (``factorise``,
    ``mlp.yaml``); a path with directories, or inline YAML, is left to jsonargparse."""
    if Path(value).exists() or not CONFIG_NAME.fullmatch(value):
        return value
    return str(configs.path(value))


class ConfigFile(ActionConfigFile):
    """``--config`` as jsonargparse reads it, with the packaged configs addressable by name."""

    def __call__(self, parser: ArgumentParser, cfg: Namespace, values: Any, option_string: str | None = None) -> None:
        self.apply_config(parser, cfg, self.dest, resolve_config(values) if isinstance(values, str) else values)


class LabArgumentParser(LightningArgumentParser):
    """LightningCLI's parser, told which command it parses for (``None``: the main parser), with no abbreviated
    options: ``--seed 3`` must not quietly mean ``--seed_everything 3`` (nor ``--seeds 3`` in the whole lab)."""

    def __init__(self, *args: Any, command: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.command = command


class LabCLI(LightningCLI):
    """LightningCLI with the data's sizes linked into the model, a top-level ``--accelerator``, the step progress
    bar, checkpoints every few epochs, packaged configs by name, and prediction to a CSV.

    After ``fit``, ``results`` holds what :func:`write_results` wrote to ``results.json``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.results: dict[str, Any] | None = None
        self.resume: Resume | None = None  # what a fit with a checkpoint file resumes (see lab2_lightning.lab.resume)
        self.trained_on: TrainedOn | None = None  # what the MLP checkpoint that validate measures was trained on
        self.run_lock: Any = None  # the lock on the run folder a resume continues
        self.parsers: dict[str | None, LightningArgumentParser] = {}  # by command; None: no subcommands
        super().__init__(*args, **kwargs)

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        """As LightningCLI's, with a ``--config`` that also takes the name of a packaged config."""
        kwargs.setdefault("dump_header", [f"lightning.pytorch=={pl.__version__}"])
        parser = self.parser_class(**kwargs)
        parser.add_argument(
            "-c",
            "--config",
            action=ConfigFile,
            help=f"A config file (YAML or JSON), or the name of a packaged config: {', '.join(configs.names())}.",
        )
        return parser

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        command = getattr(parser, "command", None)
        self.parsers[command] = parser
        parser.add_argument(
            "--accelerator",
            type=Accelerator | None,
            default=None,
            help="Shorthand for --trainer.accelerator (cpu, gpu, auto, ...); wins over it when both are given.",
        )
        parser.add_argument(
            "--threads",
            type=int | Literal["auto"],
            default="auto",
            help="CPU threads: a number, or auto: one for a data matrix of fewer than 100,000 entries (a second "
            "thread only spins there), PyTorch's default above.",
        )
        parser.add_lightning_class_args(StepProgressBar, "progress_bar")
        # Every command takes the same configs, and they set the checkpoints, so every command has the options.
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.save_last": True, "checkpoint.every_n_epochs": 1})
        if command is not None:
            # A resumed run writes into its own folder, where last.ckpt exists: Lightning's version counter would
            # write last-v1.ckpt beside it when its record of the file is lost (the folder named another way), and
            # the next resume would start from the stale last.ckpt. Overwritten, last.ckpt is the newest state.
            parser.set_defaults({"checkpoint.enable_version_counter": False})
        if command == "predict":
            # The model, its sizes, class names and feature names come from its checkpoint (LightningCLI reads them
            # from --ckpt_path), not from the file to classify, which has no labels, hence no classes: no links
            # (they would win over the checkpoint's values), and no --model or --config needed.
            parser.add_lightning_class_args(PredictionWriter, "prediction")
            parser.set_defaults({"model": {"class_path": "lab2_lightning.LabMLP"}})
            return
        # A link whose target the chosen model does not take is skipped, so both models share these.
        for name in DATA_LINKS:
            parser.link_arguments(f"data.{name}", f"model.init_args.{name}", apply_on="instantiate")

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        """Parse, then turn ``--ckpt_path last`` into a file and check any checkpoint file, before LightningCLI
        reads the model's settings from it; a fit that resumes a finished run ends here (see
        :func:`~lab2_lightning.lab.resume.check_unfinished`)."""
        try:
            super().parse_arguments(parser, args)
        except ArgumentError:
            explain_unknown_option(args, self.parsers)
            raise
        command = self.config.get("subcommand")
        if command is None:
            return
        config = self.config[command]
        if config.ckpt_path == "best":  # Lightning would end in a traceback
            raise LabError(
                "--ckpt_path best names the best checkpoint of a fit run earlier in the same process, which a command "
                "never has: give a checkpoint file (lightning_logs/version_N/checkpoints/...), or last"
            )
        if config.ckpt_path == "last":
            model = str(config.model.class_path) if config.model is not None else None
            config.ckpt_path = str(newest_last_checkpoint(default_root(config), model, command))
        if config.ckpt_path == "hpc" and not any(default_root(config).glob("hpc_ckpt_*.ckpt")):  # a traceback too
            raise LabError(
                f"--ckpt_path hpc: no hpc_ckpt_N.ckpt in {default_root(config)} (Lightning writes them when SLURM "
                "requeues a fit): give a checkpoint file, or last"
            )
        if config.ckpt_path is not None and config.ckpt_path not in LIGHTNING_CHECKPOINT_NAMES:
            checkpoint = check_checkpoint(str(config.ckpt_path), command, config.model)
            if command == "validate" and checkpoint_model_name(checkpoint) == LabMLP.__name__:
                self.trained_on = TrainedOn.from_checkpoint(checkpoint)
            if command == "fit":
                self.resume = plan_resume(str(config.ckpt_path), checkpoint)
                check_unfinished(self.resume, config.trainer.max_steps, config.trainer.max_epochs)

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        if config.accelerator is not None:
            config.trainer.accelerator = config.accelerator
        check_accelerator(config.trainer.accelerator)
        check_strategy(config.trainer.strategy)
        check_plugins(config.trainer.plugins)
        if config.trainer.enable_progress_bar is False:
            raise LabError(
                "--trainer.enable_progress_bar false clashes with this program's own progress bar (Lightning "
                "refuses a bar callback without a bar); turn it off with --progress_bar.enabled false"
            )
        if self.subcommand in (None, "fit"):
            trainer = config.trainer
            check_length(trainer.max_steps, trainer.max_epochs, trainer.max_time, config.data.steps_per_epoch)
            check_logging(config.trainer.log_every_n_steps)
            data = config.data
            if data.steps_per_epoch >= 1 and data.steps_per_batch >= 1:  # below 1: the DataModule's own errors
                _, per_batch = step_grid(data.steps_per_epoch, data.steps_per_batch, trainer.max_steps)
                check_batch_grid(per_batch, config.checkpoint.every_n_train_steps, trainer.val_check_interval)
        if self.subcommand == "fit":  # where its logs and checkpoints go, checked before any training
            writable_folder(config.trainer.default_root_dir or ".", "--trainer.default_root_dir")
        if self.subcommand is not None and config.weights_only is None:
            config.weights_only = True  # checkpoints hold tensors and plain data only: nothing else is unpickled
        drop_saved_links(config.model)
        if self.subcommand == "predict":
            prepare_prediction(config)

    def after_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        drop_skipped_links(self.model, config.model)
        torch.set_num_threads(threads_for(config.threads, self.datamodule.train_x.numel()))

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        """The Trainer, after the checks that need the data and the model (a resume's, and validate's of data its
        checkpoint would misread), and with the logger of the run's folder (unless one is configured): a resumed
        run's own, or a new one claimed atomically (see :mod:`~lab2_lightning.lab.run_folder`). A Trainer that cannot
        be built leaves no new folder behind."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        check_has_step(self.subcommand, self.model)
        if self.resume is not None:
            check_same_data(self.resume, self.datamodule)
            check_fits(self.resume.checkpoint, self.model)
        if self.trained_on is not None:
            self.trained_on.check(self.datamodule, str(config.ckpt_path))
        if self.subcommand is None or config.trainer.logger not in (None, True) or "logger" in kwargs:
            return self.checked_trainer(**kwargs)
        run_dir = self.resume.run_dir if self.resume is not None else None
        if run_dir is not None and rank_zero_only.rank == 0:
            # Held until the process ends: a second resume of the same run, started meanwhile, is refused.
            self.run_lock = lock(run_dir)
            if self.run_lock is None:
                raise LabError(f"{run_dir} is being resumed by another process; wait for it to end")
        claimed: list[Path] = []  # the folders made here, to remove if the Trainer cannot be built
        if run_dir is None and rank_zero_only.rank == 0:  # other DDP ranks get rank 0's folder from Lightning
            logs = default_root(config) / LOGS
            claimed = [] if logs.exists() else [logs]
            run_dir = logs / f"version_{claim_version(logs)}"
            claimed.insert(0, run_dir)
        try:
            trainer = self.checked_trainer(logger=run_logger(run_dir, default_root(config)), **kwargs)
        except BaseException:
            for folder in claimed:
                with contextlib.suppress(OSError):  # not empty: another run has begun there meanwhile
                    folder.rmdir()
            raise
        if self.resume is not None and run_dir is not None and rank_zero_only.rank == 0:
            print(describe(self.resume, run_dir), file=sys.stderr)
        return trainer

    def checked_trainer(self, **kwargs: Any) -> pl.Trainer:
        """LightningCLI's Trainer; Lightning's refusal of its options is a user's error, in one line.

        The Trainer's constructor only checks its options (the callbacks and loggers it gets are built already), so
        what it raises is about them, whatever the type: ``ValueError`` (``fsdp`` on a CPU), ``TypeError``
        (``devices`` that are not a count), ``ModuleNotFoundError`` (``precision transformer-engine`` without the
        package) or ``MisconfigurationException`` (``deepspeed`` without the package).
        """
        try:
            return super().instantiate_trainer(**kwargs)
        except (ValueError, TypeError, ImportError, MisconfigurationException) as error:
            config = self.config[self.subcommand] if self.subcommand else self.config
            raise trainer_refusal(config.trainer, error) from None

    def after_fit(self) -> None:
        self.results = write_results(self)

    def before_predict(self) -> None:
        if type(self.model).predict_step is pl.LightningModule.predict_step:
            raise LabError(
                f"{self.config.predict.ckpt_path}: a {type(self.model).__name__} does not classify; "
                "predict needs the checkpoint of an MLP (LabMLP)"
            )


def explain_unknown_option(args: ArgsType, parsers: dict[str | None, LightningArgumentParser]) -> None:
    """Raise a ``LabError`` naming the options that an unknown one abbreviates, if any."""
    if not isinstance(args, list):
        return
    command, rest = (args[0], args[1:]) if args and args[0] in parsers else (None, args)
    if command not in parsers:
        return
    known = option_names(parsers[command])
    for name in unknown_options(rest, known):
        message = not_abbreviated(name, known, command or "this command")
        if message:
            raise LabError(message)


# Lightning's max_epochs when neither it nor max_steps nor max_time limits a fit.
LIGHTNING_DEFAULT_EPOCHS = 1000


def check_length(max_steps: int, max_epochs: int | None, max_time: Any, steps_per_epoch: int) -> None:
    """A run must take at least one step, and stop where the user said: the lab's epochs are ``trainer.max_steps``.

    ``max_steps`` -1 is Lightning's "no step limit"; with no other limit Lightning then runs its default 1000 epochs
    of ``data.steps_per_epoch`` steps, 100,000 for Exercise 1, saying so only in a warning among its others.
    """
    if max_steps == 0 or max_steps < -1:
        raise LabError(f"trainer.max_steps (the lab's epochs) must be at least 1, got {max_steps}")
    if max_steps == -1 and max_epochs is None and max_time is None:
        raise LabError(
            f"trainer.max_steps -1 means no step limit, and with no trainer.max_epochs Lightning would stop after "
            f"its default {LIGHTNING_DEFAULT_EPOCHS} epochs: {LIGHTNING_DEFAULT_EPOCHS * steps_per_epoch:,} steps "
            f"here (data.steps_per_epoch {steps_per_epoch}); give the lab's epochs as trainer.max_steps N, or set "
            "trainer.max_epochs or trainer.max_time"
        )
    if max_epochs is not None and (max_epochs == 0 or max_epochs < -1):
        raise LabError(f"trainer.max_epochs must be at least 1 (or -1 for no limit), got {max_epochs}")


def check_batch_grid(steps_per_batch: int, every_n_train_steps: int | None, val_check_interval: Any) -> None:
    """Lightning acts between batches: with ``steps_per_batch`` steps in each (``data.steps_per_batch`` as the
    DataModule lowers it), a checkpoint interval off that grid would be written only at common multiples, and
    validation inside an epoch (``val_check_interval``, in batches or a fraction of them) would land elsewhere than
    asked. Both are refused rather than quietly changed."""
    if steps_per_batch == 1:
        return
    if every_n_train_steps and every_n_train_steps % steps_per_batch:
        raise LabError(
            f"checkpoint.every_n_train_steps {every_n_train_steps} is not a multiple of the {steps_per_batch} steps "
            f"of each batch (data.steps_per_batch): checkpoints can only be written between batches; use a multiple "
            f"of {steps_per_batch}, or --data.steps_per_batch 1"
        )
    in_batches = isinstance(val_check_interval, int) and not isinstance(val_check_interval, bool)  # even 1
    if in_batches or val_check_interval not in (None, 1.0):
        raise LabError(
            f"trainer.val_check_interval {val_check_interval} places validation between Lightning's batches, which "
            f"are {steps_per_batch} steps each here (data.steps_per_batch); validate every epoch and set "
            "data.steps_per_epoch to the interval, or use --data.steps_per_batch 1"
        )


def check_logging(log_every_n_steps: int | None) -> None:
    """Refuse a negative logging interval in one line. 0 is Lightning's "never" for what it logs itself; the models
    write every step's loss to TensorBoard on their own (in bulk), whatever the interval."""
    if log_every_n_steps is not None and log_every_n_steps < 0:
        raise LabError(f"trainer.log_every_n_steps must be 0 or more, got {log_every_n_steps}")


def default_root(config: Namespace) -> Path:
    """Where a run's ``lightning_logs`` is: ``trainer.default_root_dir``, else the working directory (as Lightning
    has it, so that a resumed run names its folder as the run that wrote the checkpoint did)."""
    root = config.trainer.default_root_dir
    return Path(os.path.expanduser(root)) if root else Path.cwd()


def run_logger(run_dir: Path | None, root: Path) -> TensorBoardLogger:
    """Lightning's default logger, writing into ``run_dir``; ``None`` (the other ranks of a new DDP run): Lightning
    numbers it, and takes rank 0's folder."""
    if run_dir is None:
        return TensorBoardLogger(save_dir=root, name=LOGS)
    return TensorBoardLogger(save_dir=run_dir.parent.parent, name=run_dir.parent.name, version=run_dir.name)


def check_has_step(command: str | None, model: pl.LightningModule) -> None:
    """Refuse ``validate`` or ``test`` of a model without the step they run, before a run folder is made: Lightning
    would say so only after building the Trainer and its folder."""
    step = {"validate": "validation_step", "test": "test_step"}.get(command or "")
    if step is None or is_overridden(step, model):  # Lightning's own test, which it applies after making the folder
        return
    if command == "test":
        raise LabError(
            f"{type(model).__name__} has no test_step: the lab's data have a training and a validation split, no "
            "test split; measure a checkpoint with validate"
        )
    raise LabError(
        f"{type(model).__name__} has nothing to validate (no validation_step): its fit's results hold its numbers"
    )


def check_checkpoint(path: str, command: str, model: Namespace | None) -> dict[str, Any]:
    """Refuse, in one line, a checkpoint that is missing, unreadable or not this project's, and for ``fit`` one of
    another model or other settings: LightningCLI would quietly train the checkpoint's model with its settings.
    Returns the checkpoint."""
    checkpoint = load_checkpoint(path)
    if command != "fit" or model is None:
        return checkpoint  # validate, test and predict take the checkpoint's model and settings: that is their point
    saved = checkpoint_model_name(checkpoint)
    wanted = str(model.class_path).rsplit(".", 1)[-1]
    if saved != wanted:
        raise LabError(f"{path}: this is a {saved} checkpoint; it cannot resume a {wanted}")
    hparams = checkpoint["hyper_parameters"]
    given = model.init_args.as_dict() if isinstance(model.get("init_args"), Namespace) else {}
    for key, value in given.items():
        # None leaves a setting to the model (seeds: from seed_everything), which saves what it chose.
        if key in hparams and key not in DATA_LINKS and value is not None and hparams[key] != value:
            raise LabError(
                f"{path}: model.{key} is {hparams[key]!r} in the checkpoint but {value!r} here; resume with the "
                "options of the run that wrote it"
            )
    return checkpoint


def drop_skipped_links(model: pl.LightningModule, model_config: Namespace) -> None:
    """Remove from the model's hyperparameters the linked data sizes that its class does not take.

    LightningCLI records every link's value in the hyperparameters, also when jsonargparse skipped the link because
    the chosen model has no such argument (``n_rows`` for the MLP): the checkpoint would keep them, and building the
    model of a ``--ckpt_path`` from them would pass arguments the class refuses. The model's ``init_args`` are the
    arguments jsonargparse found the class to take.
    """
    init_args = model_config.get("init_args")
    for key in DATA_LINKS:
        if key in model.hparams and (init_args is None or key not in init_args):
            del model.hparams[key]


def drop_saved_links(model_config: Namespace | None) -> None:
    """Forget the linked data sizes that a checkpoint's hyperparameters hold although its model does not take them
    (see :func:`drop_skipped_links`; checkpoints written before it have them): LightningCLI keeps those as
    ``dict_kwargs``, which would be passed to the class as they are."""
    extra = model_config.get("dict_kwargs") if model_config is not None else None
    if extra:
        model_config.dict_kwargs = {key: value for key, value in extra.items() if key not in DATA_LINKS}


def prepare_prediction(config: Namespace) -> None:
    """Checks and settings of ``predict``: a checkpoint is needed, and the data's training settings do not apply
    (the batch is the file's raw features; the model applies its training statistics), so that they cannot refuse a
    file of one row."""
    if config.ckpt_path is None:
        raise LabError("predict needs a trained MLP: --ckpt_path lightning_logs/version_N/checkpoints/last.ckpt")
    config.data.val_size = 0
    config.data.preprocessing = "none"


def build_cli(args: list[str], run: bool = True, prog: str = "lab2") -> LabCLI:
    """Parse ``args`` and build the DataModule, the model and the Trainer; with ``run``, ``args`` start with a
    subcommand (``fit``, ...) and it runs (after ``fit``, ``cli.results`` holds the results). ``run=False`` only
    builds, from options without a subcommand, as LightningCLI does."""
    return LabCLI(**cli_settings(prog), args=args, run=run)


def cli_settings(prog: str = "lab2") -> dict[str, Any]:
    """LightningCLI's arguments for :class:`LabCLI`; ``prog``, the program's name in usage lines."""
    return {
        "model_class": pl.LightningModule,
        "subclass_mode_model": True,
        "datamodule_class": IrisDataModule,
        "seed_everything_default": 0,
        "save_config_kwargs": {"overwrite": True},
        # The parameter table says nothing on models this small. Every run gathers its members' results and HParams
        # rows (RunSummary): not an option, since results.json is written from it; says what it kept if it is
        # stopped (StopNote); and ends with its final state in last.ckpt (FinalCheckpoint), which a resume needs.
        "trainer_defaults": {
            "enable_model_summary": False,
            "callbacks": [RunSummary(), StopNote(), FinalCheckpoint()],
        },
        "parser_class": LabArgumentParser,
        # Parse errors are raised, not printed with the whole usage text: run() prints them in one line.
        "parser_kwargs": {
            "prog": prog,
            "description": "One experiment of Lab 2 (see configs/).",
            "exit_on_error": False,
            **{command: {"command": command} for command in SUBCOMMANDS},
        },
    }


class ParsersBuilt(Exception):
    """Not an error: how :class:`ParsersOnly` stops, with the parsers."""

    def __init__(self, parsers: dict[str | None, LightningArgumentParser]) -> None:
        super().__init__()
        self.parsers = parsers


class ParsersOnly(LabCLI):
    """Builds LabCLI's parsers and stops before parsing (for messages about the options of a command)."""

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        raise ParsersBuilt(self.parsers)


def experiment_parsers(prog: str = "lab2") -> dict[str | None, LightningArgumentParser]:
    """The parser of each LightningCLI subcommand, built without parsing anything."""
    try:
        ParsersOnly(**cli_settings(prog), args=[], run=True)
    except ParsersBuilt as built:
        return built.parsers
    raise AssertionError("ParsersOnly always stops")


def option_names(parser: ArgumentParser) -> set[str]:
    """A parser's long options (``--trainer.max_steps``, ``--model``), from its defaults."""
    return {f"--{key}" for key in parser.get_defaults().keys()} | {"--help", "--print_config"}  # noqa: SIM118


def unknown_options(args: list[str], known: set[str]) -> list[str]:
    """The options in ``args`` (``--name`` or ``--name=value``) that are not in ``known``, nor below one that is
    (``--model.rank`` is below ``--model``, a class whose own options jsonargparse checks)."""
    unknown = []
    for arg in args:
        if not arg.startswith("--"):
            continue
        name = arg.split("=", 1)[0].removesuffix("+")  # --trainer.callbacks+=... appends
        parts = name.split(".")
        if not any(".".join(parts[:n]) in known for n in range(1, len(parts) + 1)):
            unknown.append(name)
    return unknown


def not_abbreviated(name: str, known: set[str], what: str) -> str | None:
    """The message for ``name`` when it abbreviates options in ``known``, which are never abbreviated."""
    near = sorted(option for option in known if option.startswith(name))
    if not near:
        return None
    return f"{name} is not an option of {what} (none is abbreviated); did you mean {' or '.join(near)}?"


def write_results(cli: LabCLI) -> dict[str, Any]:
    """The results of a finished fit, written to ``results.json`` in the run's log directory (rank 0, atomically)
    and returned. Final numbers that are not finite raise before anything is written."""
    runs = next(c for c in cli.trainer.callbacks if isinstance(c, RunSummary)).runs
    bad = non_finite(runs)
    if bad:  # the last step itself can break the weights, after the last check of a loss
        raise DivergenceError(f"training diverged: {', '.join(bad[:3])} not finite after the last step; lower model.lr")
    settings = json.loads(cli.parser.dump(cli.config, format="json"))
    config = cli.config[cli.subcommand] if cli.subcommand else cli.config
    results = {
        "model": type(cli.model).__name__,
        "runs": runs,
        "seed": config.seed_everything,
        "data": str(cli.datamodule.source),
        "threads": torch.get_num_threads(),
        "settings": settings[cli.subcommand] if cli.subcommand else settings,
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
