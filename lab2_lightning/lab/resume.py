"""Resuming a single run (``fit --ckpt_path``): which checkpoint ``last`` means, which run folder a resume continues,
whether anything is left to train, and whether the data are the checkpoint's.

A resume continues the run that wrote the checkpoint, in that run's own folder (the one above ``checkpoints/``),
whether its path came from ``last``, the command line or a saved ``config.yaml`` (LightningCLI saves the
``ckpt_path`` of a resumed run in it): it never copies one run's state into a new folder, nor writes into another
run's. Two exceptions start a new run folder from the checkpoint's state instead, so that nothing is overwritten: a
checkpoint older than its run's ``last.ckpt`` (the run has gone on past it), and a checkpoint outside any run folder.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint

from lab2_lightning.data.datamodule import IrisDataModule, recorded_data
from lab2_lightning.models.checkpoints import checkpoint_model_name, load_checkpoint
from lab2_lightning.utils.errors import LabError

LOGS = "lightning_logs"  # Lightning's name for the folder of a root's runs
LAST = f"{ModelCheckpoint.CHECKPOINT_NAME_LAST}{ModelCheckpoint.FILE_EXTENSION}"
RESULTS = "results.json"
# Lightning's max_epochs when neither max_epochs nor max_steps is set.
LIGHTNING_MAX_EPOCHS = 1000


@dataclass(frozen=True)
class Resume:
    """A checkpoint to resume from, and what was read from it.

    Args:
        checkpoint: its path, as given.
        step: its global step.
        epochs: the Lightning epochs it finished (``None`` if the checkpoint does not say).
        data: the identity of the data it was trained on (``None``: written before it was recorded).
        run_dir: the run folder it continues; ``None``: a new run folder starts from its state.
        newer: when ``run_dir`` is ``None`` because its run has gone on past it, that run's folder and step.
    """

    checkpoint: Path
    step: int
    epochs: int | None
    data: dict[str, str | None] | None
    run_dir: Path | None
    newer: tuple[Path, int] | None = None


def newest_last_checkpoint(root: Path, model_class_path: str | None, command: str = "fit") -> Path:
    """``--ckpt_path last``: the newest ``last.ckpt`` under ``root/lightning_logs`` that holds a model of this
    class (another model's newer run is passed over; ``None``: any model). Only the settings of each checkpoint are
    read (its tensors are mapped, not loaded); an unreadable one is an error, not passed over, since it may be the
    run meant."""
    wanted = model_class_path.rsplit(".", 1)[-1] if model_class_path else None
    pattern = f"{LOGS}/*/checkpoints/{LAST}"
    for path in sorted(root.glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True):
        if wanted is None or checkpoint_model_name(load_checkpoint(path, mmap=True)) == wanted:
            return path
    model = f"{wanted} " if wanted else ""
    purpose = "resume from" if command == "fit" else command
    raise LabError(f"--ckpt_path last: no {model}checkpoint {root / pattern} to {purpose}")


def owning_run(checkpoint: Path) -> Path | None:
    """The run folder whose ``checkpoints/`` holds ``checkpoint`` (Lightning's layout, ``<root>/<name>/<version>/
    checkpoints/``), as given, or absolute when too short a relative path to name its root; ``None`` for a checkpoint
    elsewhere."""
    if checkpoint.parent.name != "checkpoints":
        return None
    run_dir = checkpoint.parent.parent
    return run_dir if len(run_dir.parts) >= 2 else run_dir.absolute()


def plan_resume(path: str, checkpoint: dict[str, Any]) -> Resume:
    """What resuming from ``checkpoint`` (loaded from ``path``) means: the run folder it continues, or a new one."""
    checkpoint_path = Path(path)
    step = int(checkpoint["global_step"])
    progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("current", {})
    epochs = progress.get("processed")
    run_dir = owning_run(checkpoint_path)
    newer = None
    last = run_dir / "checkpoints" / LAST if run_dir is not None else None
    if last is not None and last.is_file() and not last.samefile(checkpoint_path):
        last_step = int(load_checkpoint(last, mmap=True)["global_step"])
        if last_step > step:  # continuing in that folder would overwrite the run's later state
            run_dir, newer = None, (run_dir, last_step)
    return Resume(checkpoint_path, step, epochs, recorded_data(checkpoint), run_dir, newer)


def check_unfinished(resume: Resume, max_steps: int, max_epochs: int | None) -> None:
    """Stop before anything is written when the checkpoint has already reached this run's end: nothing would be
    trained, and Lightning would still write a results.json, without the numbers only a training measures.

    A finished run whose results.json is in its folder is said to be complete, in one line, with exit status 0 (like
    ``--help``, this ends the command); without one it is an error.
    """
    if 0 < max_steps <= resume.step:
        option, reached = "trainer.max_steps", f"step {resume.step} of trainer.max_steps {max_steps}"
    else:
        limit = LIGHTNING_MAX_EPOCHS if max_epochs is None and max_steps == -1 else max_epochs
        if limit is None or limit == -1 or resume.epochs is None or resume.epochs < limit:
            return
        option, reached = "trainer.max_epochs", f"epoch {resume.epochs} of trainer.max_epochs {limit}"
    results = resume.run_dir / RESULTS if resume.run_dir is not None else None
    if results is not None and results.is_file() and results.stat().st_mtime >= resume.checkpoint.stat().st_mtime:
        print(
            f"{resume.run_dir} is already complete ({reached}): nothing resumed, nothing changed; its results: "
            f"{results} (raise {option} to train on)"
        )
        raise SystemExit(0)
    raise LabError(
        f"{resume.checkpoint}: nothing left to train ({reached}) and no results.json of this state to show; raise "
        f"{option} to train on, or run it again without --ckpt_path"
    )


def check_same_data(resume: Resume, datamodule: IrisDataModule) -> None:
    """Refuse, in one line naming both, to resume on other data than the checkpoint's: of the same shape, it would
    train on without a word. A checkpoint written before the data were recorded resumes with a warning."""
    recorded, current = resume.data, datamodule.identity
    if recorded is None:
        print(
            f"warning: {resume.checkpoint} does not record its data (written by an earlier version); resuming on "
            f"{current['source']} unchecked",
            file=sys.stderr,
        )
        return
    if recorded == current:
        return
    if recorded["source"] == current["source"]:
        raise LabError(
            f"{resume.checkpoint}: its data file {recorded['source']} has changed since it was trained on (sha256 "
            f"{short(recorded['sha256'])} then, {short(current['sha256'])} now); resume with the data it was trained on"
        )
    raise LabError(
        f"{resume.checkpoint} was trained on {named(recorded)}, but this run reads {named(current)}; resume with the "
        "data it was trained on (data.path)"
    )


def short(sha256: str | None) -> str:
    return sha256[:12] if sha256 else "none"


def named(data: dict[str, str | None]) -> str:
    """Data as a message names them: the file and the start of its SHA-256 (a synthetic matrix: its settings)."""
    return f"{data['source']} (sha256 {short(data['sha256'])})" if data["sha256"] else str(data["source"])


def describe(resume: Resume, run_dir: Path) -> str:
    """The line a resume prints on stderr, so that it is never silent about which run it continues, in which folder."""
    if resume.newer is not None:
        later, later_step = resume.newer
        return (
            f"continuing {resume.checkpoint} (step {resume.step}) in a new run folder {run_dir}: its own run {later} "
            f"has gone on to step {later_step}"
        )
    if resume.run_dir is None:
        return f"continuing {resume.checkpoint} (step {resume.step}) in a new run folder {run_dir}"
    return f"resuming {run_dir} from step {resume.step} ({resume.checkpoint.name})"
