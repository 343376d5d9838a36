"""What each command of ``lab2`` does (see :mod:`lab2_lightning.cli`, the entry point, for the commands): one
experiment through LightningCLI, the whole lab, the report again; and the process's settings and one-line errors.
"""

from __future__ import annotations

import logging
import shlex
import signal
import sys
import warnings
from argparse import ArgumentError
from pathlib import Path
from typing import Any

import matplotlib
import torch
from jsonargparse import ArgumentParser
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lab2_lightning.lab import report, sweep
from lab2_lightning.lab.experiment import (
    SUBCOMMANDS,
    build_cli,
    experiment_parsers,
    not_abbreviated,
    option_names,
    results_path,
    unknown_options,
)
from lab2_lightning.utils.errors import LabError, exit_on_user_error
from lab2_lightning.utils.signals import Stopped

COMMANDS = (*SUBCOMMANDS, "lab", "report")
# The options of one experiment that spread it over several devices (or machines), which the whole lab does not do.
SEVERAL_DEVICES_OPTIONS = ("--trainer.devices", "--trainer.strategy", "--trainer.num_nodes")
HEADLINE_RUNS = 10


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
    # The prediction writer numbers rows by their input lines, not by Lightning's batch indices.
    warnings.filterwarnings("ignore", message=r".*Couldn't infer the batch indices fetched from your dataloader.*")
    # The models step in training_step (manual optimisation): a checkpoint after it holds the state of its global_step.
    warnings.filterwarnings("ignore", message=r"Using ModelCheckpoint with manual optimization and every_n_train_steps")
    # run() always hands LightningCLI its arguments explicitly, also when they came from the command line.
    warnings.filterwarnings("ignore", message=r"LightningCLI's args parameter is intended")
    # Lightning 2.6 on torch >= 2.10 warns about its own use of torch's pytree API; nothing a user can act on.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, NoAdvertising) for f in logger.filters):
            logger.addFilter(NoAdvertising())


class NoAdvertising(logging.Filter):
    """Drops Lightning's advertising ("💡 Tip: ... try installing litlogger / litmodels"). Lightning logs it at INFO
    level through the same logger as its useful lines, with no switch of its own; its emoji marks it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡")


def program() -> str:
    """The name the user typed to run us, for usage lines and the commands our messages suggest."""
    name = Path(sys.argv[0]).name
    return "python -m lab2_lightning" if name == "__main__.py" else name or "lab2"


# ------------------------------------------------------------------------------------------ one experiment


def headline(results: dict[str, Any]) -> list[str]:
    """A fit's (or a validation's) headline numbers, a line per run (seed), at most ``HEADLINE_RUNS`` lines."""
    runs = results.get("runs") or [results]  # a flat result is one run
    model = results.get("model")
    seed = results.get("seed")
    lines = [run_headline(model, {"seed": seed, **run}) for run in runs]
    if len(lines) <= HEADLINE_RUNS:
        return lines
    rest = runs[HEADLINE_RUNS - 1 :]
    return [*lines[: HEADLINE_RUNS - 1], spread_headline(model, rest)]


def run_headline(model: str | None, run: dict[str, Any]) -> str:
    """One run's line; the yardsticks (SVD optimum, validation) where the run has them (a config's callbacks add
    the SVD optimum; ``val_size`` 0 leaves no validation)."""
    if model == "LowRankFactorisation":
        line = f"seed {run['seed']}, rank {run['rank']}: GD loss {run['gd_loss']:.4f}"
        if "svd_loss" in run:
            gap = run["relative_gap"]  # None where the optimum is 0: the rank reaches the data's own
            line += f", SVD optimum {run['svd_loss']:.4f} " + (
                "(exact at this rank: no relative gap)" if gap is None else f"(gap {100 * gap:+.4f}%)"
            )
        return line
    split, name = ("val", "validation") if "val" in run else ("train", "training")
    if split not in run:
        return f"seed {run['seed']}: no accuracy measured"
    per_class = ", ".join(
        f"{label} {'n/a' if acc is None else f'{acc:.3f}'}" for label, acc in run[split]["acc_per_class"].items()
    )
    train = f"training accuracy {run['train']['acc']:.3f}, " if split == "val" and "train" in run else ""
    return f"seed {run['seed']}: {train}{name} accuracy {run[split]['acc']:.3f} ({per_class})"


def spread_headline(model: str | None, runs: list[dict[str, Any]]) -> str:
    seeds = f"{len(runs)} more runs (seeds {runs[0]['seed']}-{runs[-1]['seed']})"
    if model == "LowRankFactorisation":
        losses = [run["gd_loss"] for run in runs]
        return f"{seeds}: GD loss {min(losses):.4f} to {max(losses):.4f}"
    split = "val" if "val" in runs[0] else "train"
    if split not in runs[0]:
        return f"{seeds}: no accuracy measured"
    accs = [run[split]["acc"] for run in runs]
    return f"{seeds}: {'validation' if split == 'val' else 'training'} accuracy {min(accs):.3f} to {max(accs):.3f}"


def run_experiment(command: str, args: list[str]) -> Any:
    """One of LightningCLI's subcommands; returns the results of ``fit``, the CSV that ``predict`` wrote, or the
    metrics of ``validate`` and ``test``."""
    with warnings.catch_warnings():
        if command != "fit":
            # The checkpoint's callback states matter to resume training only; these commands restore the weights.
            warnings.filterwarnings("ignore", message=r".*callbacks used to create the checkpoint need to be provided")
            warnings.filterwarnings("ignore", message=r"The dirpath has changed from")
        cli = build_cli([command, *args], prog=program())
    if command == "fit":
        path = results_path(cli.trainer)  # every rank takes part in finding it
        if cli.trainer.is_global_zero:
            print("\n".join([*headline(cli.results or {}), f"results: {path}"]))
        return cli.results
    if command == "predict":
        writer = cli.config_init.predict.prediction
        if cli.trainer.is_global_zero:
            print(f"{writer.rows} predictions: {writer.output}")
        return writer.output
    if command == "validate" and cli.trainer.is_global_zero:
        # The checkpoint's weights measured on the data: the same lines as at the end of its fit.
        if cli.trainer.ckpt_path is None:
            print("no --ckpt_path: these are the weights as drawn, before any training")
        print("\n".join(headline({"model": type(cli.model).__name__, "runs": cli.model.member_results()})))
    return {key: float(value) for key, value in cli.trainer.callback_metrics.items()}


# ---------------------------------------------------------------------------------------- the whole lab

LAB_DESCRIPTION = (
    "Run the whole of Lab 2 (both exercises over several seeds, a rank sweep) and write the report; this is the "
    "command when none is given. The other commands: fit, validate, test, predict (one experiment, e.g. "
    "'{prog} fit --config factorise'; '{prog} fit --help' lists every option) and report (the report again from "
    "a results.json)."
)


def lab_parser() -> ArgumentParser:
    """The options of the whole lab: the arguments of :func:`lab2_lightning.lab.sweep.run_lab`."""
    parser = ArgumentParser(
        prog=f"{program()} [lab]",
        exit_on_error=False,
        allow_abbrev=False,
        description=LAB_DESCRIPTION.format(prog=program()),
    )
    parser.add_function_arguments(sweep.run_lab, as_group=False)
    return parser


def check_lab_options(args: list[str], parser: ArgumentParser) -> None:
    """Refuse, in one line, an option the whole lab does not have: one of ``fit``'s is named with the command that
    takes it, an abbreviation with the options it abbreviates."""
    known = option_names(parser)
    unknown = unknown_options(args, known)
    if not unknown:
        return
    name = unknown[0]
    if name in SEVERAL_DEVICES_OPTIONS:
        raise LabError(
            f"{name}: the whole lab runs each training on one device; to train on several, run its experiments one "
            f"by one, e.g. {program()} fit --config factorise --model.init_args.seeds '[0,1,2,3,4,5,6,7,8,9]' "
            "--trainer.devices 2 --trainer.strategy ddp (then --config mlp)"
        )
    if not unknown_options([name], option_names(experiment_parsers(program())["fit"])):
        raise LabError(
            f"{name} is not an option of the whole lab; for one experiment run: {program()} fit {shlex.join(args)}"
        )
    raise LabError(not_abbreviated(name, known, "the whole lab") or f"{name} is not an option (see --help)")


def run_lab(args: list[str]) -> dict[str, Any]:
    """The whole lab: both exercises over several seeds and a rank sweep, then the report."""
    parser = lab_parser()
    check_lab_options(args, parser)
    options = parser.parse_args(args)
    results = sweep.run_lab(**options.as_dict())
    print(f"report: {Path(options.out) / 'lab2.md'} ({results['wall_time_s']:.1f} s)")
    return results


def report_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog=f"{program()} report",
        exit_on_error=False,
        allow_abbrev=False,
        description="Rebuild the lab report from a saved results.json (no training).",
    )
    parser.add_argument("results", type=str, help="results.json written by the whole lab")
    parser.add_argument("--out", type=str | None, default=None, help="output directory (default: beside results.json)")
    return parser


def run_report(args: list[str]) -> Path:
    parser = report_parser()
    known = option_names(parser)
    unknown = unknown_options(args, known)
    if unknown:
        raise LabError(not_abbreviated(unknown[0], known, "report") or f"{unknown[0]} is not an option (see --help)")
    options = parser.parse_args(args)
    return report.main([options.results, *(["--out", options.out] if options.out else [])])


# --------------------------------------------------------------------------------------------- errors, entry


def parse_error(error: ArgumentError) -> str:
    """jsonargparse's account of a bad option, in one line: its first line and the innermost cause.

    jsonargparse chains the exceptions it went through, the innermost one being the problem itself ("Expected a
    <class 'int'>. Got value: two"), and puts each level's message, nested, into the outer ones: the first line of
    the outermost names the option (``Parser key "trainer.max_steps":``), the lines between restate the type hints
    it tried. The option's name exists only in that first line (``ArgumentError.argument_name`` is None), so the
    first line is the one piece of its text taken apart.
    """
    innermost: BaseException = error
    while (innermost.__cause__ or innermost.__context__) is not None:
        innermost = innermost.__cause__ or innermost.__context__  # type: ignore[assignment]
    head = str(error).strip().splitlines()[0].strip()
    detail = " ".join(str(innermost).split())
    return head if detail in head else f"{head} {detail}"


def user_error(error: BaseException) -> str | None:
    """The one-line message of the user-facing error behind ``error``, if any (jsonargparse wraps errors raised in
    ``__init__``); ``None`` for a bug, which keeps its traceback."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, (LabError, MisconfigurationException)):
            return " ".join(str(cause).split())  # Lightning's messages may span lines
        if isinstance(cause, ArgumentError):
            return f"{parse_error(cause)} (see --help)"
        cause = cause.__cause__ or cause.__context__
    return None


def split_command(args: list[str]) -> tuple[str, list[str]]:
    """The command (the first argument; ``lab`` when the first argument is an option or there is none)."""
    if args and args[0] in COMMANDS:
        return args[0], args[1:]
    if args and not args[0].startswith("-"):
        raise LabError(f"{args[0]!r} is not a command: use one of {', '.join(COMMANDS)} (none: lab)")
    return "lab", args


def run(args: list[str]) -> Any:
    """Run a command and return what it made: the results of ``fit`` or ``lab``, the CSV of ``predict``, the report
    of ``report``. Bad input exits with status 2 and one ``error:`` line."""
    configure_process()
    try:
        with exit_on_user_error(user_error):
            command, rest = split_command(args)
            if command in SUBCOMMANDS:
                return run_experiment(command, rest)
            if command == "report":
                return run_report(rest)
            return run_lab(rest)
    except SIGTERMException:
        # The other DDP ranks of a run whose rank 0 got SIGTERM: Lightning stops them with its own exception.
        raise Stopped(signal.SIGTERM) from None
    finally:
        # Lightning leaves a DDP process group up; gloo's threads then abort the interpreter's exit.
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
