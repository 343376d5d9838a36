"""Threads by size: one CPU thread for a small problem, the cores for a large one, the user's number when given."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from lab2_lightning.utils.errors import LabError
from lab2_lightning.utils.threads import DEFAULT_THREADS, SMALL_PROBLEM, threads_for


def test_threads_for_a_size() -> None:
    assert threads_for("auto", 150 * 4) == 1
    assert threads_for("auto", SMALL_PROBLEM) == DEFAULT_THREADS
    assert threads_for(3, 150 * 4) == 3
    for bad in (0, -1, True):
        with pytest.raises(LabError, match="--threads must be a positive whole number or auto"):
            threads_for(bad, 600)


def test_a_run_records_its_threads(configs: Any, run_cli: Callable[..., dict[str, Any]]) -> None:
    assert run_cli("--config", "factorise", "--trainer.max_steps", "2", "--threads", "2")["threads"] == 2
    assert run_cli("--config", "factorise", "--trainer.max_steps", "2")["threads"] == 1  # Iris is small (and the
    # process is back at one thread for the tests after this one)


def test_bad_threads_is_one_line(cli_error: Callable[..., str]) -> None:
    assert cli_error("--config", "factorise", "--threads", "0") == (
        "error: --threads must be a positive whole number or auto, got 0"
    )
