"""One way to write: every file goes to a temporary file beside its target and is renamed into place.

A rename within a folder is atomic, so a reader (or a resume) sees the previous file or the new one, never half of
one; a failure (a full disk, no permission) removes the temporary file, leaves the previous file whole and says so
in one line. Checkpoints take the same path through :class:`AtomicCheckpointIO`, Lightning's plugin for how
checkpoints are written.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from lab2_lightning.errors import LabError


def write_atomically(path: str | Path, write: Callable[[BinaryIO], Any]) -> Path:
    """Call ``write`` on a temporary file beside ``path``, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o666 & ~_umask())  # the permissions of any new file, not mkstemp's 0600
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        kept = "the previous file is unchanged" if path.exists() else "nothing was written"
        raise LabError(f"{path}: {error.strerror or error}; {kept}") from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | Path, data: bytes) -> Path:
    return write_atomically(path, lambda file: file.write(data))


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, value: Any) -> Path:
    """JSON without NaN or infinities (``allow_nan=False``): a number that is not finite is a bug to see, not a
    ``NaN`` for a report to print."""
    return write_text(path, json.dumps(value, indent=2, allow_nan=False) + "\n")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``torch.save`` checkpoints, written through :func:`write_atomically`: a ``last.ckpt`` is always
    whole, also when the disk fills up while it is written."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        write_bytes(path, buffer.getbuffer())
