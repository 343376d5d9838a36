"""``python scripts/train.py``: the whole lab with no arguments, or one experiment given a config.

- No experiment options (only ``--seeds``, ``--accelerator``, ``--out``, ...): the whole lab, both exercises over
  several seeds and a rank sweep, then ``reports/lab2.md`` (:mod:`lab2_lightning.lab.sweep`).
- Any LightningCLI option (``--config``, ``--model``, ``--data.*``, ``--trainer.*``, ...): one experiment
  (:mod:`lab2_lightning.cli`).
"""

from __future__ import annotations

import sys
from typing import Any

from jsonargparse import ArgumentParser

from lab2_lightning import cli
from lab2_lightning.lab import sweep as lab
from lab2_lightning.utils.errors import exit_on_user_error

EXPERIMENT_OPTIONS = (
    "--config", "--print_config", "--model", "--data", "--trainer", "--seed_everything", "--checkpoint",
    "--progress_bar", "--optimizer", "--lr_scheduler", "--ckpt_path",
)  # fmt: skip


def is_single_experiment(args: list[str]) -> bool:
    """True when any argument is one of LightningCLI's options (``--trainer.max_epochs=5`` counts)."""
    return any(arg.split("=", 1)[0].split(".", 1)[0] in EXPERIMENT_OPTIONS for arg in args)


def lab_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="train.py",
        exit_on_error=False,
        description="Run the whole of Lab 2 (both exercises over several seeds, a rank sweep) and write the "
        "report. To train one experiment instead, give a config: train.py --config configs/factorise.yaml "
        "(then --help lists every option).",
    )
    parser.add_function_arguments(lab.run_lab, as_group=False)
    return parser


def main(args: list[str] | None = None) -> dict[str, Any]:
    """Entry point of ``scripts/train.py``. Bad input exits with status 2 and one line on stderr."""
    args = sys.argv[1:] if args is None else list(args)
    cli.configure_process()
    if is_single_experiment(args):
        return cli.main(args)
    with exit_on_user_error(cli.user_error):
        options = lab_parser().parse_args(args)
        results = lab.run_lab(**options.as_dict())
    print(f"report: {options.out / 'lab2.md'} ({results['wall_time_s']:.1f} s)")
    return results
