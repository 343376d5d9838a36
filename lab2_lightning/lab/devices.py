"""Where a run trains: the Trainer's accelerator, strategy and precision options, checked so that a wrong or
unavailable one is a line naming it, not a traceback from deep inside Lightning's connectors.

Lightning checks these options only when it builds the Trainer, and raises whatever its check happens to raise there
(``ValueError``, ``TypeError``, ``ModuleNotFoundError``, its ``MisconfigurationException``), so names it knows are
checked here against its public registries first, and :func:`trainer_refusal` words what is left.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import lightning.pytorch as pl
import torch
from jsonargparse import Namespace
from lightning.pytorch.accelerators import AcceleratorRegistry
from lightning.pytorch.plugins import Precision
from lightning.pytorch.strategies import StrategyRegistry

from lab2_lightning.utils.errors import LabError

# The Trainer's options that say where and how it runs, the ones its refusals are about.
DEVICE_OPTIONS = ("accelerator", "strategy", "devices", "num_nodes", "precision", "plugins")

# multiprocessing's start methods other than Lightning's "popen" (a fresh run of the same command line per rank).
STARTED_FROM_THIS_PROCESS = ("spawn", "fork", "forkserver")


def check_accelerator(accelerator: Any) -> None:
    """Refuse, before Lightning builds a Trainer, an accelerator it does not know, or one this machine lacks."""
    if not isinstance(accelerator, str) or accelerator == "auto":
        return  # an Accelerator given by class is Lightning's to check
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise LabError(
            f"--accelerator {accelerator} was asked for, but PyTorch sees no CUDA GPU "
            f"(torch {torch.__version__}); use --accelerator cpu or auto"
        )
    known = AcceleratorRegistry.available_accelerators()
    if accelerator not in known | {"gpu"}:
        raise LabError(
            f"--trainer.accelerator {accelerator} is not an accelerator: use one of "
            f"{', '.join(sorted(known | {'auto', 'gpu'}))}"
        )
    if accelerator in known and not AcceleratorRegistry[accelerator]["accelerator"].is_available():
        raise LabError(
            f"--accelerator {accelerator} was asked for, but Lightning finds no {accelerator} device here; "
            "use --accelerator cpu or auto"
        )


def check_strategy(strategy: Any) -> None:
    """Refuse a strategy Lightning does not know, and the ones that train in processes started from this one.

    ``ddp_spawn``, ``ddp_fork`` and ``ddp_notebook`` (and their ``find_unused_parameters`` forms) train in child
    processes and hand back only the weights and the logged metrics: this process would write an empty
    ``results.json`` into a run folder of its own and exit 0. ``ddp`` runs the same training (the same DDP, gloo on
    CPU) as fresh processes of the same command line, each with its results, so it is the one to use.
    """
    if isinstance(strategy, str):
        if strategy == "auto":
            return
        if strategy not in StrategyRegistry:
            raise LabError(
                f"--trainer.strategy {strategy} is not a strategy: use auto or one of "
                f"{', '.join(StrategyRegistry.available_strategies())}"
            )
        start_method = StrategyRegistry[strategy]["init_params"].get("start_method")
        name = strategy
    elif isinstance(strategy, Namespace) and "class_path" in strategy:
        start_method = (strategy.get("init_args") or Namespace()).get("start_method")
        name = f"{strategy.class_path.rsplit('.', 1)[-1]} with start_method {start_method}"
    else:
        return
    if start_method in STARTED_FROM_THIS_PROCESS:
        raise LabError(
            f"--trainer.strategy {name} trains in processes started from this one, which hand back no results "
            "(results.json would be empty, in a run folder of its own); use --trainer.strategy ddp, the same "
            "training run as separate processes"
        )


def check_plugins(plugins: Any) -> None:
    """Build once each precision plugin that the options name by class, so that a missing package (bitsandbytes,
    transformer_engine) or an argument the plugin refuses is one line: jsonargparse reports a plugin it cannot build
    as matching none of the option's types, in some forty lines and without the cause."""
    for plugin in plugins if isinstance(plugins, list) else [plugins]:
        if not (isinstance(plugin, Namespace) and isinstance(plugin.get("class_path"), str)):
            continue
        module, _, name = plugin.class_path.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError):
            continue  # not a class: jsonargparse says so
        arguments = (plugin.get("init_args") or Namespace()).as_dict()
        if not (inspect.isclass(cls) and issubclass(cls, Precision)) or any(
            isinstance(value, dict) for value in arguments.values()
        ):
            continue  # an argument given by class: only jsonargparse builds it
        try:
            cls(**arguments)
        except (ImportError, ValueError, TypeError) as error:
            raise LabError(f"--trainer.plugins {name}: {' '.join(str(error).split())}") from None


def given_device_options(trainer: Namespace) -> list[str]:
    """The device options of ``trainer`` (its config) that differ from the Trainer's defaults, as options."""
    defaults = inspect.signature(pl.Trainer).parameters
    given = []
    for name in DEVICE_OPTIONS:
        value = trainer.get(name)
        if value != defaults[name].default:
            given.append(f"--trainer.{name} {class_names(value)}")
    return given


def class_names(value: Any) -> str:
    """An option's value as typed: a class given by ``class_path`` by its name, a list item by item."""
    if isinstance(value, list):
        return ",".join(class_names(item) for item in value)
    if isinstance(value, Namespace) and "class_path" in value:
        return str(value.class_path).rsplit(".", 1)[-1]
    return str(value)


def trainer_refusal(trainer: Namespace, error: BaseException) -> LabError:
    """Lightning's refusal to build a Trainer from ``trainer`` (its config), in one line that names the device
    options given, which are what its refusals are about (a strategy that needs a GPU, a precision whose package is
    missing); Lightning's own words say which."""
    options = given_device_options(trainer)
    settings = f" ({', '.join(options)})" if options else ""
    return LabError(f"Lightning cannot set up this Trainer{settings}: {' '.join(str(error).split())}")
