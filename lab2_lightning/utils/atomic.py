"""Write-then-rename helpers, so a crash or a full disk never leaves a half-written output file."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``.

    The rename is atomic on POSIX and Windows, so readers see the old file or the new one, never a torn one;
    if ``write`` raises, the temporary file is removed and the previous ``path`` is left intact. The file gets the
    permissions of any new file (0644 under the usual umask 022), not ``mkstemp``'s private 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        tmp.chmod(0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def current_umask() -> int:
    """The process's umask. The only way to read it is to set it, so it is set back at once (a thread that creates a
    file in between would use 0o022)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def write_text(path: str | Path, text: str) -> Path:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | Path, data: Any) -> Path:
    """Atomically write ``data`` as indented JSON; NaN and infinity are refused rather than written."""
    return write_text(path, json_text(data))


def json_text(data: Any) -> str:
    """``data`` as the project's JSON files hold it: indented, and without NaN or infinity (a ``ValueError``)."""
    return json.dumps(data, indent=2, allow_nan=False) + "\n"
