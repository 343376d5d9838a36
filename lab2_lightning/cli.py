"""``lab2``'s commands: LightningCLI's ``fit``, ``validate``, ``test`` and ``predict``, the whole ``lab``, and its
``report`` again.

:class:`LabCLI` is a LightningCLI that uses only its public hooks. It adds the checkpoint and prediction options,
links the data's sizes into the model, and gives each run its folder (:mod:`~lab2_lightning.utils.run_folder`)
and its identity: the settings that decide the numbers, kept in every checkpoint and compared on every resume.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import warnings
from pathlib import Path
from typing import Any, Literal

import torch
from jsonargparse import Namespace, dict_to_namespace
from jsonargparse.typing import PositiveInt
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from lab2_lightning.callbacks import LastCheckpoint, MemberBoard, PredictionWriter, Yardsticks
from lab2_lightning.callbacks.results import run_results
from lab2_lightning.configs import path as config_path
from lab2_lightning.data.reading import file_sha256, packaged_iris
from lab2_lightning.errors import LabError
from lab2_lightning.utils.atomic import write_json, write_text
from lab2_lightning.utils.run_folder import (
    VERSION,
    claim_new,
    global_rank,
    hold,
    launch_marker,
    newest_last_checkpoint,
    wait_for_folder,
)
from lab2_lightning.utils.threads import auto_threads

SUBCOMMANDS = ("fit", "validate", "test", "predict")
COMMANDS = (*SUBCOMMANDS, "lab", "report")
# The data sizes the models take from the DataModule (a link the chosen model does not take is skipped).
DATA_LINKS = ("n_rows", "n_features", "data_rms", "n_classes", "class_names", "feature_names")
RUN_DIR = "LAB2_RUN_DIR"  # the run's folder, for the processes Lightning's DDP launcher starts
# The Trainer's settings that change the numbers a step gives (besides its precision), part of a run's identity.
TRAINER_NUMBERS = ("accumulate_grad_batches", "gradient_clip_val", "gradient_clip_algorithm")
# The precisions as Lightning reads them: "32" is "32-true", "16" is "16-mixed".
PRECISIONS = {"64": "64-true", "32": "32-true", "16": "16-mixed", "bf16": "bf16-mixed"}


def plain(value: Any) -> Any:
    """``value`` as JSON's types: jsonargparse's ``PositiveFloat`` and the like become ``float``, ``int``, ..."""
    return json.loads(json.dumps(value, default=str))


class RunRecord(Callback):
    """Records the run in every checkpoint: its identity (:func:`identity`), and its settings as plain data, so that
    the checkpoint loads with ``torch.load(weights_only=True)``."""

    def __init__(self) -> None:
        self.identity: dict[str, Any] = {}
        self.launch_marker: Path | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Every process has joined the run (the process group is up), so its folder's name has been read."""
        if self.launch_marker is not None and trainer.is_global_zero:
            self.launch_marker.unlink(missing_ok=True)

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint["run_identity"] = self.identity
        for key in ("hyper_parameters", "datamodule_hyper_parameters"):
            if key in checkpoint:
                checkpoint[key] = plain(dict(checkpoint[key]))


class LabCLI(LightningCLI):
    """LightningCLI with the lab's defaults. ``args`` as on the command line (the subcommand first)."""

    def __init__(self, args: list[str], run: bool = True) -> None:
        self.run_record, self.last_checkpoint = RunRecord(), LastCheckpoint()
        self.results: dict[str, Any] | None = None  # set by fit
        self.run_dir: Path | None = None  # set once the arguments are parsed
        self.new_folder = False
        try:
            self._parse_and_run(args, run)
        except BaseException:
            self.leave_nothing_behind()
            raise

    def _parse_and_run(self, args: list[str], run: bool) -> None:
        """LightningCLI's parse, instantiate and run, with the lab's defaults."""
        super().__init__(
            subclass_mode_model=True,
            subclass_mode_data=True,
            # The lab's optimizer is part of the model (model.lr); a second, --optimizer, would run unrecorded.
            auto_configure_optimizers=False,
            # Errors raised, not printed with the usage: the entry point prints them as one line. The prog names the
            # subcommand, which add_arguments_to_parser reads.
            parser_kwargs={
                "exit_on_error": False,
                **{cmd: {"exit_on_error": False, "prog": f"lab2 {cmd}"} for cmd in SUBCOMMANDS},
            },
            # config.yaml goes into the run's own folder, new or the run it continues: never another run's.
            save_config_kwargs={"overwrite": True},
            # A checkpoint's hyper_parameters are then the model's own arguments, as save_hyperparameters() keeps
            # them: LabMLP.load_from_checkpoint(path) works as in any Lightning project.
            load_from_checkpoint_support=False,
            trainer_defaults={
                # TensorBoard's files are MemberBoard's, a run per member: Lightning's TensorBoardLogger would add an
                # empty run of its own.
                "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": "."}},
                "plugins": [{"class_path": "lab2_lightning.utils.atomic.AtomicCheckpointIO"}],
                "callbacks": [MemberBoard(), self.run_record, self.last_checkpoint],
            },
            args=args,
            run=run,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--threads",
            type=PositiveInt | Literal["auto"],
            default="auto",
            help="CPU threads; auto: one for a matrix of fewer than 100,000 entries, where more only spin, else "
            "one per core that no other process keeps busy",
        )
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        # LastCheckpoint writes last.ckpt, what a resume continues; ModelCheckpoint, the epochs' own checkpoints. Each
        # run has a folder of its own, so no versioned names (epoch=0-step=100-v1.ckpt) are needed.
        parser.set_defaults({"checkpoint.save_last": False, "checkpoint.enable_version_counter": False})
        parser.set_defaults({"data": {"class_path": "lab2_lightning.data.TableDataModule"}})
        if parser.prog == "lab2 predict":
            # The model and the normalisation come from the checkpoint; the file to classify has no labels.
            parser.add_lightning_class_args(PredictionWriter, "prediction")
            parser.set_defaults({"model": {"class_path": "lab2_lightning.models.LabMLP"}})
            parser.set_defaults(
                {"data": {"class_path": "lab2_lightning.data.TableDataModule", "init_args": {"preprocessing": "none"}}}
            )
            return
        for name in DATA_LINKS:
            parser.link_arguments(f"data.{name}", f"model.init_args.{name}", apply_on="instantiate")

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse; then find the checkpoint (``--ckpt_path last``), hold it to the run's identity (a resume keeps it;
        a prediction takes the checkpoint's model), and point the loggers and checkpoints at the run's folder."""
        super().parse_arguments(parser, args)
        command = self.config.subcommand
        config = self.config[command]
        strategy = config.trainer.strategy
        if isinstance(strategy, str) and any(start in strategy for start in ("spawn", "fork", "notebook")):
            raise LabError(
                f"--trainer.strategy {strategy}: its processes are started by multiprocessing, and the results stay "
                "in them; use ddp (Lightning starts the processes) or torchrun"
            )
        self.identity = identity(config)
        self.run_record.identity = self.identity
        parent, version, loggers = logger_folder(config)
        ckpt = config.ckpt_path
        if ckpt == "last":
            ckpt = config.ckpt_path = str(newest_last_checkpoint(parent))
        if ckpt is None and command in ("validate", "predict"):
            raise LabError(f"{command} measures a trained model: give --ckpt_path (last: the newest run's)")
        self.checkpoint_step, saved, hyper_parameters = (0, None, None) if ckpt is None else read_identity(Path(ckpt))
        if saved is not None and command != "predict":
            rule = (
                "a resume may change only trainer.max_steps: use that run's settings, or start a new run"
                if command == "fit"
                else f"{command} measures that run as it was trained: use its settings"
            )
            check_identity(ckpt, saved, self.identity, rule)
        elif saved is not None:
            # The model is the checkpoint's. A factorisation fills in the matrix it was trained on: the same data.
            config.model = dict_to_namespace(
                {"class_path": saved["model"]["class_path"], "init_args": hyper_parameters}
            )
            if saved["model"]["class_path"].endswith(".LowRankFactorisation"):
                rule = "a factorisation fills in the matrix it was trained on: use that run's data settings"
                check_identity(ckpt, {"data": saved["data"]}, {"data": self.identity["data"]}, rule)
        # The run's identity equals the checkpoint's, model settings included: the checkpoint is handed to the
        # Trainer by fit, validate and predict below. LightningCLI would read the model settings from the checkpoint
        # again, and refuse the sizes linked from the data.
        self.checkpoint, config.ckpt_path = ckpt, None
        self.new_folder = not (command == "fit" and ckpt is not None)
        self.run_dir = run_dir = self.run_folder(command, ckpt, parent, version)
        number = VERSION.fullmatch(run_dir.name)  # version_N as N: Lightning's progress bar shows it so
        for logger in loggers:
            logger.init_args.save_dir, logger.init_args.name = str(run_dir.parent), ""
            logger.init_args.version = int(number.group(1)) if number else run_dir.name
        config.trainer.default_root_dir = str(run_dir)
        config.checkpoint.dirpath = str(run_dir / "checkpoints")
        self.last_checkpoint.path = run_dir / "checkpoints" / "last.ckpt"

    def leave_nothing_behind(self) -> None:
        """After a failure (refused data or options, a divergence, a stop): a new run with no checkpoint yet has
        nothing to keep or continue, so its folder goes, and so does the launch's note of it."""
        if self.run_record.launch_marker is not None:
            self.run_record.launch_marker.unlink(missing_ok=True)
        if self.run_dir is not None and self.new_folder and not (self.run_dir / "checkpoints").exists():
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """LightningCLI's; the Trainer's own refusal of its options (accelerator, strategy, devices, ...) is the
        user's error, told in one line."""
        try:
            return super().instantiate_trainer(**kwargs)
        except (ValueError, TypeError, RuntimeError, ImportError) as error:  # ImportError: a package it needs
            raise LabError(f"--trainer: {error}") from None

    def run_folder(self, command: str, ckpt: str | None, parent: Path, version: str | int | None) -> Path:
        """A resume's own folder (locked), or a new one claimed under ``parent``: ``version_N``, or the version
        asked for. The other processes of a DDP run take the folder the first one claimed: Lightning's launcher
        starts them with it in the environment; under torchrun or SLURM, which start every process at once, the
        first one leaves its folder's name in ``parent`` for the launch (:func:`~lab2_lightning.utils.run_folder.
        launch_marker`)."""
        marker = launch_marker(parent)
        if int(os.environ.get("LOCAL_RANK", 0)) > 0 and RUN_DIR in os.environ:
            return Path(os.environ[RUN_DIR])
        if marker is not None and global_rank() > 0:
            return wait_for_folder(marker)
        if command == "fit" and ckpt is not None and Path(ckpt).parent.name == "checkpoints":
            run_dir = Path(ckpt).parent.parent
            if not hold(run_dir):
                raise LabError(f"--ckpt_path {ckpt}: another process is continuing this run right now")
        else:
            run_dir = claim_new(parent, f"version_{version}" if isinstance(version, int) else version)
            hold(run_dir)  # a resume of it while it runs is refused
        os.environ[RUN_DIR] = str(run_dir)
        if marker is not None:
            write_text(marker, str(run_dir))
            self.run_record.launch_marker = marker
        return run_dir

    def fit(self, model: LightningModule, **kwargs: Any) -> None:
        """Train; a resume of a run that has reached its end keeps that run's results as they are."""
        results = self.run_dir / "results.json"
        if self.checkpoint is not None and 0 <= self.trainer.max_steps <= self.checkpoint_step and results.is_file():
            print(f"{self.run_dir} finished at step {self.checkpoint_step}; its results are kept: {results}")
            self.results = json.loads(results.read_text())
            return
        # A run stopped after its last checkpoint but before its results has no step left: Lightning skips its
        # loop, and the results are measured on the checkpoint's weights.
        self.trainer.fit(model, **(kwargs | {"ckpt_path": self.checkpoint}))
        if self.trainer.global_step == 0:
            raise LabError("nothing was trained: see trainer.max_steps, limit_train_batches and max_time")

    def validate(self, model: LightningModule, **kwargs: Any) -> None:
        self.trainer.validate(model, **(kwargs | {"ckpt_path": self.checkpoint}))

    def test(self, model: LightningModule, **kwargs: Any) -> None:
        self.trainer.test(model, **(kwargs | {"ckpt_path": self.checkpoint}))

    def predict(self, model: LightningModule, **kwargs: Any) -> None:
        self.trainer.predict(model, **(kwargs | {"ckpt_path": self.checkpoint}))

    def after_instantiate_classes(self) -> None:
        threads = self.config[self.config.subcommand].threads
        if threads == "auto":
            threads = auto_threads(self.datamodule.n_entries)
        if threads is not None:
            torch.set_num_threads(threads)

    def after_fit(self) -> None:
        """results.json, and the run's headline."""
        trainer, model = self.trainer, self.model
        if self.results is not None:  # a finished run, kept as it was
            return
        runs = run_results(trainer, model)
        if not trainer.is_global_zero:
            return
        results = {
            "model": type(model).__name__,
            "data": self.datamodule.source,
            "settings": self.identity,
            "runs": runs,
        }
        results["curves"] = {"train": model.history.T.tolist(), "val": model.val_history}
        for callback in trainer.callbacks:
            if isinstance(callback, Yardsticks) and callback.figure is not None:  # Figure 1's points
                results["figure"] = callback.figure
        path = write_json(self.run_dir / "results.json", results)
        print("\n".join([*headline(results["model"], runs), f"results: {path}"]))
        self.results = results

    def after_validate(self) -> None:
        if self.trainer.is_global_zero:
            print("\n".join(headline(type(self.model).__name__, self.model.member_results())))

    def after_predict(self) -> None:
        writer = next(c for c in self.trainer.callbacks if isinstance(c, PredictionWriter))
        if self.trainer.is_global_zero:
            print(f"{writer.rows} predictions: {writer.output}")


def logger_folder(config: Namespace) -> tuple[Path, str | int | None, list[Namespace]]:
    """Where the run's folder goes (``save_dir/name``), the version asked for, and the loggers to point at it.
    Runs are written by TensorBoardLogger or CSVLogger (or none); another logger is refused before anything
    runs, since its files could not be kept with the run."""
    logger = config.trainer.logger
    loggers = logger if isinstance(logger, list) else [logger] if isinstance(logger, Namespace) else []
    for entry in loggers:
        if entry.class_path.rsplit(".", 1)[-1] not in ("TensorBoardLogger", "CSVLogger"):
            raise LabError(f"--trainer.logger {entry.class_path}: lab2 keeps runs with TensorBoardLogger or CSVLogger")
    root = Path(config.trainer.default_root_dir or ".")
    if not loggers:
        return root / "lightning_logs", None, []
    first = loggers[0].init_args
    save_dir = root if first.save_dir in (None, ".") else Path(first.save_dir)  # "." is the default: the root's
    return (
        save_dir / (first.name if first.get("name") is not None else "lightning_logs"),
        first.get("version"),
        loggers,
    )


def identity(config: Namespace) -> dict[str, Any]:
    """The settings that decide a run's numbers: seed, precision and the Trainer's other settings that change a
    step (:data:`TRAINER_NUMBERS`), model (without the sizes it takes from the data), data (its file by content)."""
    model, data = config.model.as_dict(), config.data.as_dict()
    for name in DATA_LINKS:
        model.get("init_args", {}).pop(name, None)
    init = data.get("init_args", {})
    if "path" in init:  # the file by its content: the same bytes moved elsewhere are the same data
        path = init.pop("path")
        source = packaged_iris() if path is None else Path(path)
        init["sha256"] = file_sha256(source) if source.is_file() else None  # a missing file: the DataModule says so
    precision = str(config.trainer.precision or "32-true")  # None: Lightning's default
    settings = {
        "seed_everything": config.seed_everything,
        "precision": PRECISIONS.get(precision, precision),
        "trainer": {name: config.trainer.get(name) for name in TRAINER_NUMBERS},
        "model": model,
        "data": data,
    }
    return plain(settings)


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in flatten(item, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): value}


def read_identity(ckpt: Path) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """A lab2 checkpoint's step, run identity and model arguments; a ``LabError`` for any other file."""
    if not ckpt.is_file():
        raise LabError(f"--ckpt_path {ckpt}: no such file")
    try:
        checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)
        return checkpoint["global_step"], checkpoint["run_identity"], checkpoint["hyper_parameters"]
    except KeyError:
        raise LabError(f"--ckpt_path {ckpt}: not a checkpoint of a lab2 run (it has no run identity)") from None
    except Exception as error:
        raise LabError(f"--ckpt_path {ckpt}: not a checkpoint ({type(error).__name__})") from None


def check_identity(ckpt: str, saved: dict[str, Any], current: dict[str, Any], rule: str) -> None:
    """Refuse to continue, measure or fill in a run with a setting that decides its numbers changed, naming it and
    the ``rule`` it breaks (and what to do)."""
    old, new = flatten(saved), flatten(current)
    for key in sorted(old.keys() | new.keys(), key=lambda key: (key != "model.class_path", key)):  # the model first
        if old.get(key) != new.get(key):
            raise LabError(
                f"--ckpt_path {ckpt}: {key} is {new.get(key)!r} here but {old.get(key)!r} in the checkpoint's "
                f"run; {rule}"
            )


def headline(model: str, runs: list[dict[str, Any]], most: int = 10) -> list[str]:
    """A line per member (the last one summarising the rest beyond ``most``)."""
    lines = []
    for run in runs[:most]:
        if model == "LowRankFactorisation":
            line = f"seed {run['seed']}, rank {run['rank']}: GD loss {run['gd_loss']:.4f}"
            if "hidden_rmse" in run:
                line += f", RMSE on the hidden entries {run['hidden_rmse']:.4f}"
            if "hard_impute_rmse" in run:
                line += f" (column means {run['column_mean_rmse']:.4f}, iterative SVD {run['hard_impute_rmse']:.4f})"
            if "svd_loss" in run:
                gap = run["relative_gap"]
                # GD cannot end below the optimum: a negative gap is rounding, shown as +0.
                line += f", SVD optimum {run['svd_loss']:.4f} " + (
                    "(exact)" if gap is None else f"(gap {100 * max(gap, 0.0):+.4f}%)"
                )
        elif "train" not in run:
            line = f"seed {run['seed']}: not measured (the fit stopped inside a Lightning epoch, before its validation)"
        else:
            split = "val" if "val" in run else "train"
            per_class = ", ".join(
                f"{k} {'n/a' if v is None else f'{v:.3f}'}" for k, v in run[split]["acc_per_class"].items()
            )
            name = "validation" if split == "val" else "training"
            line = f"seed {run['seed']}: {name} accuracy {run[split]['acc']:.3f} ({per_class})"
        lines.append(line)
    if len(runs) > most:
        lines.append(f"... and {len(runs) - most} more (results.json)")
    return lines


class NoAdvertising(logging.Filter):
    """Drops Lightning's "💡 Tip" advertising, which it logs through the same logger as its useful lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡")


def quiet_lightning() -> None:
    """Lightning's hints that do not apply to this project, silenced in one place."""
    for message in (
        r".*does not have many workers",  # one in-memory full batch: no workers to add
        r".*smaller than the logging interval",  # epochs of a few steps are the lab's design
        r".*val_dataloader. but have no .validation_step",  # the factorisation has nothing to validate
        r"The dirpath has changed from",  # validate and predict write into a folder of their own
        r"Couldn.t infer the batch indices",  # predictions are numbered by their input lines
        r"Total length of .* across ranks is zero",  # triples with nothing hidden: nothing to validate
        r"It is recommended to use .self.log\(.*sync_dist=True",  # the bar's values come from synced metrics
        r"Experiment logs directory .* exists and is not empty",  # a resume: MemberBoard writes every point again
        r"Checkpoint directory .* exists and is not empty",  # a resume writes into its own run's folder
        r"LightningCLI's args parameter is intended",  # run() always hands LightningCLI its arguments
        r".*isinstance\(treespec, LeafSpec\)` is deprecated",  # Lightning's own use of torch's pytree API
    ):
        warnings.filterwarnings("ignore", message=message)
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(NoAdvertising())


def packaged_config(args: list[str]) -> list[str]:
    """``--config NAME``, for a config shipped with the package (``lab2 fit --config mlp``), when no file of that
    name is here; a name that is neither is refused, naming the packaged ones. (Any other value, YAML text, is
    jsonargparse's.)"""
    args = [part for arg in args for part in (arg.split("=", 1) if arg.startswith("--config=") else [arg])]
    return [
        str(config_path(arg))
        if before in ("-c", "--config") and not Path(arg).exists() and re.fullmatch(r"[\w.-]+", arg)
        else arg
        for before, arg in zip(["", *args], args, strict=False)
    ]


def run(args: list[str]) -> Any:
    """Run a command; return what it made (a fit's results, a whole lab's, the report's path)."""
    quiet_lightning()
    command, rest = (args[0], args[1:]) if args and args[0] in COMMANDS else ("lab", args)
    if args and command == "lab" and args[0] != "lab" and not args[0].startswith("-"):
        raise LabError(f"{args[0]!r} is not a command: use one of {', '.join(COMMANDS)} (none: lab)")
    if command == "report":
        from lab2_lightning.lab.report import main as report

        return report(rest)
    if command == "lab":
        from lab2_lightning.lab.run_lab import main as lab

        return lab(rest)
    cli = LabCLI([command, *packaged_config(rest)])
    return getattr(cli, "results", None)
