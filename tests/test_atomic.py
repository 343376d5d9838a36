"""Writing files whole or not at all, checkpoints through the same path, and run folders that two runs never
share."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
import threading
import time
from pathlib import Path
from typing import BinaryIO

import pytest
import torch

from lab2_lightning.errors import LabError
from lab2_lightning.utils.atomic import AtomicCheckpointIO, write_atomically, write_json, write_text
from lab2_lightning.utils.run_folder import claim_new, hold, newest_last_checkpoint, release


def _disk_full(file: BinaryIO) -> None:
    file.write(b"half of the new conte")
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_leaves_the_previous_file_whole(tmp_path: Path) -> None:
    """A write that fails with ENOSPC raises a LabError naming the path and saying the previous file is unchanged;
    the previous file is whole and no temporary file is left beside it."""
    path = tmp_path / "results.json"
    path.write_text('{"previous": true}\n')
    with pytest.raises(LabError) as error:
        write_atomically(path, _disk_full)
    message = str(error.value)
    assert str(path) in message
    assert "unchanged" in message
    assert "No space left on device" in message
    assert path.read_text() == '{"previous": true}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_a_full_disk_with_no_previous_file_says_nothing_was_written(tmp_path: Path) -> None:
    """A failed first write leaves no file at all (not half of one) and says so."""
    path = tmp_path / "lab2.md"
    with pytest.raises(LabError, match="nothing was written"):
        write_atomically(path, _disk_full)
    assert not list(tmp_path.iterdir())


def test_a_full_disk_at_fsync_leaves_the_previous_file_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A disk that fills while the data are flushed (fsync) also leaves the previous file whole."""
    path = write_text(tmp_path / "lab2.md", "previous\n")

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(LabError, match="unchanged"):
        write_text(path, "new\n")
    assert path.read_text() == "previous\n"
    assert [p.name for p in tmp_path.iterdir()] == ["lab2.md"]


def test_a_bug_in_the_callback_propagates_and_cleans_up(tmp_path: Path) -> None:
    """An exception that is not the operating system's keeps its type (a bug is not a user error), and the
    temporary file is removed."""
    path = write_text(tmp_path / "a.txt", "previous\n")

    def bug(file: BinaryIO) -> None:
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        write_atomically(path, bug)
    assert path.read_text() == "previous\n"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_a_write_replaces_the_file_and_makes_its_folder(tmp_path: Path) -> None:
    """A successful write makes missing folders and replaces the previous content whole."""
    path = tmp_path / "deep" / "er" / "file.txt"
    write_text(path, "one\n")
    write_text(path, "two\n")
    assert path.read_text() == "two\n"
    assert [p.name for p in path.parent.iterdir()] == ["file.txt"]


def test_written_files_have_the_usual_permissions(tmp_path: Path) -> None:
    """Files get the permissions of any new file under the umask (0644 under 022), not mkstemp's 0600."""
    before = os.umask(0o022)
    try:
        assert stat.S_IMODE(write_text(tmp_path / "a.txt", "a").stat().st_mode) == 0o644
        os.umask(0o077)
        assert stat.S_IMODE(write_text(tmp_path / "b.txt", "b").stat().st_mode) == 0o600
    finally:
        os.umask(before)


def test_write_json_refuses_numbers_that_are_not_finite(tmp_path: Path) -> None:
    """NaN is a bug to see, not a value to write: write_json raises and writes nothing."""
    with pytest.raises(ValueError):
        write_json(tmp_path / "results.json", {"loss": float("nan")})
    assert not list(tmp_path.iterdir())
    write_json(tmp_path / "results.json", {"loss": 1.5})
    assert json.loads((tmp_path / "results.json").read_text()) == {"loss": 1.5}


def test_atomic_checkpoint_io_writes_a_loadable_checkpoint(tmp_path: Path) -> None:
    """AtomicCheckpointIO's checkpoint loads back with its tensors and values, and leaves no temporary file."""
    checkpoint = {"state_dict": {"U.0": torch.arange(6.0).reshape(3, 2)}, "global_step": 7}
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint(checkpoint, path)
    loaded = torch.load(path, weights_only=True)
    assert loaded["global_step"] == 7
    assert torch.equal(loaded["state_dict"]["U.0"], checkpoint["state_dict"]["U.0"])
    assert torch.equal(io.load_checkpoint(path)["state_dict"]["U.0"], checkpoint["state_dict"]["U.0"])
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]


def test_atomic_checkpoint_io_keeps_the_previous_checkpoint_on_a_full_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint that cannot be written whole leaves the previous last.ckpt loadable."""
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"global_step": 1}, path)

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(LabError, match="unchanged"):
        io.save_checkpoint({"global_step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["global_step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_claim_new_gives_concurrent_runs_distinct_folders(tmp_path: Path) -> None:
    """Sixteen runs claiming a folder at the same moment get sixteen distinct version_N folders."""
    threads, claimed, errors = 16, [], []
    barrier = threading.Barrier(threads)

    def claim() -> None:
        barrier.wait()
        try:
            claimed.append(claim_new(tmp_path / "lightning_logs"))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    workers = [threading.Thread(target=claim) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not errors
    assert len(set(claimed)) == threads
    assert sorted(p.name for p in claimed) == sorted(f"version_{n}" for n in range(threads))


def test_claim_new_of_a_name_has_one_winner(tmp_path: Path) -> None:
    """Two runs claiming the same named folder at once: one gets it, the other a LabError naming it."""
    results: list[object] = []
    barrier = threading.Barrier(2)

    def claim() -> None:
        barrier.wait()
        try:
            results.append(claim_new(tmp_path, "mine"))
        except LabError as error:
            results.append(error)

    workers = [threading.Thread(target=claim) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sum(isinstance(r, Path) for r in results) == 1
    (error,) = [r for r in results if isinstance(r, LabError)]
    assert "mine" in str(error)


def test_claim_new_skips_past_existing_versions(tmp_path: Path) -> None:
    """The next version is one past the highest taken, whatever else is in the folder."""
    for name in ("version_0", "version_3", "notes", "version_x"):
        (tmp_path / name).mkdir()
    assert claim_new(tmp_path).name == "version_4"


def test_hold_refuses_a_folder_another_holder_locks(tmp_path: Path) -> None:
    """A folder whose lock another open file holds cannot be held; once released, it can."""
    folder = tmp_path / "run"
    folder.mkdir()
    other = os.open(folder / ".lock", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert hold(folder) is False
    finally:
        os.close(other)
    assert hold(folder) is True
    assert hold(folder) is True  # this process holds it already
    release(folder)


def test_newest_last_checkpoint_is_the_most_recently_written(tmp_path: Path) -> None:
    """``--ckpt_path last`` continues the run whose last.ckpt was written last, not the highest version."""
    for name in ("version_2", "version_0"):
        checkpoint = tmp_path / name / "checkpoints" / "last.ckpt"
        checkpoint.parent.mkdir(parents=True)
        checkpoint.write_bytes(b"x")
        time.sleep(0.01)
    assert newest_last_checkpoint(tmp_path) == tmp_path / "version_0" / "checkpoints" / "last.ckpt"
    with pytest.raises(LabError, match="last"):
        newest_last_checkpoint(tmp_path / "empty")
