"""Output folders: checked before any work starts, and replaced as a whole.

A run that cannot write where it was told should say so in one line at the start, not with a traceback after all
its training; a folder of outputs that belong together (the report: ``lab2.md``, its figures, ``results.json``) is
written to a new folder and swapped in, so it is never a mix of two runs.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from lab2_lightning.utils.atomic import current_umask
from lab2_lightning.utils.errors import LabError
from lab2_lightning.utils.signals import signals_deferred

STAGING_SUFFIX = ".new"  # the end of the name of replace_folder's new folder
PROBE_PREFIX = ".write-check."  # the start of the name of writable_folder's probe, there only while it checks


def writable_folder(path: str | Path, option: str) -> Path:
    """Create ``path`` (and its parents) if missing, and check that a file can be made in it; else raise a
    one-line :class:`LabError` that names ``option``, the path and the problem.

    The check makes and removes an entry rather than reading permission bits: root ignores those bits, but not a
    read-only filesystem or an immutable folder, and only trying tells these apart.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise LabError(f"{option} {path}: is a file, not a folder") from None
    except NotADirectoryError:
        raise LabError(f"{option} {path}: {file_above(path)} is a file, not a folder") from None
    except OSError as err:
        raise LabError(f"{option} {path}: cannot create this folder ({err.strerror})") from None
    try:
        probe(path)
    except OSError as err:
        raise LabError(f"{option} {path}: cannot write in this folder ({err.strerror})") from None
    return path


def file_above(path: Path) -> Path:
    """The nearest of ``path``'s parents that exists, which is a file when ``mkdir`` says "not a directory"."""
    return next(parent for parent in path.parents if parent.exists())


def probe(folder: Path, prefix: str = PROBE_PREFIX, suffix: str = "") -> None:
    """Make and remove a folder in ``folder``; raises ``OSError`` where that fails."""
    os.rmdir(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=folder))


def probe_swap(path: str | Path) -> None:
    """Make and remove a folder beside ``path`` named as :func:`replace_folder`'s new one (so also as long);
    raises ``OSError`` where that fails."""
    path = Path(path).resolve()
    probe(path.parent, staging_prefix(path), STAGING_SUFFIX)


def aside(path: Path) -> Path:
    """Where :func:`replace_folder` puts the previous ``path`` during its swap: a fixed name, so that the next run
    finds it after a crash."""
    return path.with_name(f".{path.name}.old")


def staging_prefix(path: Path) -> str:
    """How the new folder of :func:`replace_folder` is named, up to :func:`tempfile.mkdtemp`'s random part."""
    return f".{path.name}."


@contextmanager
def swaps_locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path``'s parent folder (``flock`` on the folder itself, so no lock file is left
    behind; the system releases it if the process dies) while a swap or a recovery beside ``path`` runs. Without a
    parent there is nothing to swap or recover, and nothing is locked."""
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except FileNotFoundError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def recover(path: Path) -> None:
    """Undo what a crash in :func:`replace_folder` left beside ``path``.

    A crash while the new folder was written leaves a ``.NAME.*.new`` folder, removed here. A crash between the two
    renames of the swap leaves ``path`` missing and the previous folder at ``.NAME.old``: it is renamed back, so the
    previous folder is what the user finds (the new one, complete or not, is discarded: nothing marks it whole). A
    crash after both renames leaves ``.NAME.old`` beside the new ``path``: it is removed.
    """
    path = path.resolve()
    old = aside(path)
    if old.is_dir():
        if path.is_dir():
            shutil.rmtree(old)
        elif not os.path.lexists(path):
            os.rename(old, path)
    if path.parent.is_dir():
        for entry in path.parent.iterdir():  # not glob: the name may hold glob's wildcards
            if entry.name.startswith(staging_prefix(path)) and entry.name.endswith(STAGING_SUFFIX):
                shutil.rmtree(entry)


def replace_folder(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write(folder)`` on a new folder beside ``path``, then swap it in for ``path`` (resolved: a link to
    a folder keeps pointing to the folder, which is replaced).

    Portable Python has no atomic exchange of two folders, so the swap is two renames in the same parent (each
    atomic): ``path`` to ``.NAME.old``, the new folder to ``path``; then ``.NAME.old`` is removed. If ``write`` or
    a rename fails, the new folder is removed and ``path`` is as it was. A crash (``kill -9``) between
    the renames leaves no ``path`` but ``.NAME.old``, which the next call (or :func:`recover`) renames back.
    Two processes replacing folders of the same parent take turns (:func:`swaps_locked`), so that neither takes the
    other's swap in progress for a crash's leftovers: two labs that end at once with the same ``--out`` each replace
    it whole, the last one's report stays. Nothing is flushed to disk (``fsync``), as in
    :mod:`~lab2_lightning.utils.atomic`: a power loss may leave files empty.
    """
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    with swaps_locked(path):
        swap_in(path, write)


def swap_in(path: Path, write: Callable[[Path], None]) -> None:
    """:func:`replace_folder`'s work, under its lock."""
    recover(path)
    new = Path(tempfile.mkdtemp(prefix=staging_prefix(path), suffix=STAGING_SUFFIX, dir=path.parent))
    old = aside(path)
    try:
        write(new)
        new.chmod(0o777 & ~current_umask())  # a folder like any other, not mkdtemp's private 0700
        with signals_deferred():  # a stop lands before the swap or after its cleanup, never in between
            had_old = os.path.lexists(path)
            if had_old:
                os.rename(path, old)
            try:
                os.rename(new, path)
            except BaseException:
                if had_old:
                    os.rename(old, path)
                raise
            shutil.rmtree(old, ignore_errors=True)  # what a crash here leaves, the next call removes
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
