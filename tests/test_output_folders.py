"""Output folders through the command line: ``--out``, ``--log_dir`` and ``--trainer.default_root_dir`` checked
before any training; the report's folder replaced as a whole (a full disk, a failure or a crash midway leaves the
previous report); ``report`` given a file that is not a lab's results."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lab2_lightning.cli import run
from lab2_lightning.lab.report import check_report_folder
from lab2_lightning.utils.errors import LabError
from lab2_lightning.utils.folders import PROBE_PREFIX
from tests.conftest import subprocess_timeout

TINY = ["--seeds", "1", "--factorise_epochs", "3", "--mlp_epochs", "2"]
REPORT = sorted(
    [
        *("lab2.md", "results.json", "fig1_pca_vs_gd.png", "loss_curves.png", "accuracy_spread.png"),
        *("rank_sweep.png", "confusion_train.png", "confusion_val.png"),
    ]
)


def one_error_line(capsys: pytest.CaptureFixture[str], args: list[str]) -> str:
    """Run the command line expecting a user's error: exit status 2, no traceback, one ``error:`` line, the last."""
    with pytest.raises(SystemExit) as exit_info:
        run(args)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert not any("Traceback" in line for line in lines)
    assert [line for line in lines if line.startswith("error:")] == lines[-1:], lines
    return lines[-1]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def lab_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A whole lab's report folder, from a tiny run."""
    root = tmp_path_factory.mktemp("lab")
    run(["lab", *TINY, "--out", str(root / "reports"), "--log_dir", str(root / "logs")])
    return root / "reports"


@pytest.fixture
def previous(lab_report: Path, tmp_path: Path) -> Path:
    """``tmp_path/out``: a previous report, told apart from the one the lab's results make by its ``lab2.md``."""
    out = tmp_path / "out"
    shutil.copytree(lab_report, out)
    (out / "lab2.md").write_text("# the previous report\n")
    return out


# ---------------------------------------------------------------------------- folders checked before training


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A folder no file can be made in. Root ignores permission bits, so as root it is also made immutable
    (``chattr +i``, which stops root too), or the case is skipped where that is not available."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    chattr = shutil.which("chattr") if os.geteuid() == 0 else None
    if os.geteuid() == 0:
        made = chattr and subprocess.run([chattr, "+i", str(folder)], capture_output=True, timeout=subprocess_timeout())
        if not made or made.returncode != 0:
            folder.chmod(0o755)
            pytest.skip("running as root, which ignores permissions, and chattr +i is not available here")
    yield folder
    if chattr:
        subprocess.run([chattr, "-i", str(folder)], check=True, timeout=subprocess_timeout())
    folder.chmod(0o755)


def a_file(tmp_path: Path) -> tuple[Path, str]:
    (tmp_path / "afile").write_text("not a folder\n")
    return tmp_path / "afile", "is a file, not a folder"


def below_a_file(tmp_path: Path) -> tuple[Path, str]:
    (tmp_path / "afile").write_text("not a folder\n")
    return tmp_path / "afile" / "sub", f"{tmp_path / 'afile'} is a file, not a folder"


def too_long(tmp_path: Path) -> tuple[Path, str]:
    return tmp_path / ("x" * 300), "cannot create this folder (File name too long)"


CASES = {"a file": a_file, "below a file": below_a_file, "a name too long": too_long, "read-only": None}


def bad_folder(case: str, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[Path, str]:
    if case == "read-only":
        folder = request.getfixturevalue("read_only")
        reason = "Operation not permitted" if os.geteuid() == 0 else "Permission denied"
        return folder, f"cannot write in this folder ({reason})"
    return CASES[case](tmp_path)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("option", ["--out", "--log_dir"])
def test_the_labs_folders_are_checked_before_training(
    option: str, case: str, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    path, problem = bad_folder(case, tmp_path, request)
    if option == "--out" and case == "a name too long":  # the previous report's place beside it is longer still
        problem = f"cannot replace this folder: File name too long in {tmp_path}"
    folders = {"--out": tmp_path / "reports", "--log_dir": tmp_path / "logs", option: path}
    line = one_error_line(capsys, ["lab", *TINY, *(str(a) for item in folders.items() for a in item)])
    assert line == f"error: {option} {path}: {problem}"
    assert not (tmp_path / "logs" / "lab").exists()  # no training started
    assert not (tmp_path / "reports" / "lab2.md").exists()


@pytest.mark.parametrize("case", CASES)
def test_fits_root_folder_is_checked_before_training(
    case: str, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    path, problem = bad_folder(case, tmp_path, request)
    args = ["fit", "--config", "factorise", "--trainer.max_steps", "2", "--progress_bar.enabled", "false"]
    line = one_error_line(capsys, [*args, "--trainer.default_root_dir", str(path)])
    assert line == f"error: --trainer.default_root_dir {path}: {problem}"
    assert not list(tmp_path.rglob("*.ckpt"))


@pytest.mark.parametrize("case", ["other files", "the working directory", "logs inside"])
def test_the_lab_refuses_an_out_it_would_clobber(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The report replaces its folder whole: a folder with files of the user's (or the logs) is refused at the
    start, and the user's files stay."""
    out, logs = tmp_path / "reports", tmp_path / "logs"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    (out / "lab2.md").write_text("# a previous report\n")
    expected = {
        "other files": f"error: --out {out}: holds files that are not a lab report's (notes.txt); the report "
        "replaces its folder as a whole: name a new or empty folder, or move them",
        "the working directory": "error: --out .: holds the working directory; the report replaces its folder as a "
        "whole, so name a folder of its own (e.g. reports)",
        "logs inside": f"error: --log_dir {out / 'logs'}: inside --out {out}, which the report replaces as a whole; "
        "put the logs elsewhere",
    }[case]
    if case == "the working directory":
        monkeypatch.chdir(out)
        out = Path(".")
    if case == "logs inside":
        logs = out / "logs"
    assert one_error_line(capsys, ["lab", *TINY, "--out", str(out), "--log_dir", str(logs)]) == expected
    assert (tmp_path / "reports" / "notes.txt").read_text() == "mine\n"
    assert not (logs / "lab").exists()


def test_another_labs_write_probe_is_not_a_foreign_file(tmp_path: Path) -> None:
    """Two labs started together check the same --out: one's probe of the folder (a moment's empty folder) is not a
    file of the user's. It used to refuse the other lab now and then (seen in CI)."""
    out = tmp_path / "reports"
    out.mkdir()
    (out / "lab2.md").write_text("# a previous report\n")
    (out / f"{PROBE_PREFIX}a1b2c3").mkdir()  # as the other lab's writable_folder makes it
    check_report_folder(out)
    (out / "notes.txt").write_text("mine\n")
    with pytest.raises(LabError, match=r"holds files that are not a lab report's \(notes.txt\)"):
        check_report_folder(out)


# ------------------------------------------------------------------------------ the report, replaced whole


def test_a_report_replaces_its_own_folder(lab_report: Path, previous: Path) -> None:
    """``report`` into the folder of its results.json (the default): the new report, whole, and nothing beside."""
    run(["report", str(previous / "results.json")])
    assert sorted(p.name for p in previous.iterdir()) == REPORT
    assert (previous / "lab2.md").read_text() == (lab_report / "lab2.md").read_text()
    assert [p.name for p in previous.parent.iterdir()] == ["out"]


def failing_writes(monkeypatch: pytest.MonkeyPatch, error: BaseException, after: int = 0) -> list[Path]:
    """Make ``Path.write_bytes`` of the report's files raise ``error`` after ``after`` writes; returns the paths
    written."""
    write_bytes, written = Path.write_bytes, []

    def write(self: Path, data: bytes) -> int:
        if self.name in REPORT and self.parent.name.startswith("."):  # the report's new folder, not the logs
            if len(written) == after:
                raise error
            written.append(self)
        return write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", write)
    return written


def test_a_full_disk_is_one_line_and_keeps_the_previous_report(
    previous: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(previous)
    failing_writes(monkeypatch, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), after=3)
    line = one_error_line(capsys, ["report", str(previous / "results.json"), "--out", str(previous)])
    assert line == f"error: {previous}: no space left on device; the previous report is unchanged"
    assert snapshot(previous) == before
    assert [p.name for p in previous.parent.iterdir()] == ["out"]  # no new folder left beside it


def test_a_full_disk_at_the_end_of_the_whole_lab(
    previous: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(previous)
    failing_writes(monkeypatch, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    line = one_error_line(capsys, ["lab", *TINY, "--out", str(previous), "--log_dir", str(tmp_path / "logs")])
    assert line == f"error: {previous}: no space left on device; the previous report is unchanged"
    assert snapshot(previous) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs", "out"]


def test_a_full_quota_without_a_previous_report(
    lab_report: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    failing_writes(monkeypatch, OSError(errno.EDQUOT, os.strerror(errno.EDQUOT)))
    out = tmp_path / "new"
    line = one_error_line(capsys, ["report", str(lab_report / "results.json"), "--out", str(out)])
    assert line == f"error: {out}: disk quota exceeded; no report was written"
    assert list(out.iterdir()) == []  # made by the check at the start, and left empty


@pytest.mark.parametrize("error", [OSError(errno.EIO, os.strerror(errno.EIO)), KeyboardInterrupt()])
def test_a_failure_midway_through_the_figures_keeps_the_previous_report(
    previous: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], error: BaseException
) -> None:
    before = snapshot(previous)
    written = failing_writes(monkeypatch, error, after=2)
    args = ["report", str(previous / "results.json"), "--out", str(previous)]
    if isinstance(error, OSError):
        line = one_error_line(capsys, args)
        assert (
            line == f"error: {previous}: cannot write the report (Input/output error); the previous report is unchanged"
        )
    else:
        with pytest.raises(KeyboardInterrupt):  # Ctrl-C: Python's own exit, after the cleanup
            run(args)
    assert [p.suffix for p in written] == [".png", ".png"]  # two figures were written, the third failed
    assert snapshot(previous) == before
    assert [p.name for p in previous.parent.iterdir()] == ["out"]


# A crash (kill -9) between the two renames of the swap: the process ends at once, no cleanup runs.
CRASH = """
import os, sys
from lab2_lightning.cli import main

root, args = sys.argv[1], sys.argv[2:]
rename, renames = os.rename, []

def crashing_rename(src, dst):
    if str(src).startswith(root):
        renames.append(src)
        if len(renames) == 2:
            os._exit(9)
    rename(src, dst)

os.rename = crashing_rename
main(args)
"""


def test_a_crash_between_the_renames_leaves_the_previous_report_aside_and_the_next_run_restores_it(
    previous: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(previous)
    args = [sys.executable, "-c", CRASH, str(previous.parent), "report", str(previous / "results.json")]
    done = subprocess.run(args, capture_output=True, text=True, timeout=subprocess_timeout())
    assert done.returncode == 9, done.stderr
    aside = previous.parent / ".out.old"
    assert not previous.exists() and snapshot(aside) == before  # what the docstring of replace_folder says
    assert len(list(previous.parent.glob(".out.*.new"))) == 1
    # The next run restores the previous report first: a run that then fails leaves it in place.
    failing_writes(monkeypatch, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    line = one_error_line(capsys, ["report", str(aside / "results.json"), "--out", str(previous)])
    assert line == f"error: {previous}: no space left on device; the previous report is unchanged"
    assert snapshot(previous) == before
    assert [p.name for p in previous.parent.iterdir()] == ["out"]


def test_the_next_run_removes_what_a_crash_after_both_renames_left(lab_report: Path, previous: Path) -> None:
    """A crash after both renames leaves the new report in place and the previous one aside (made here by hand:
    the test above shows the names a real crash leaves)."""
    previous.rename(previous.parent / ".out.old")
    shutil.copytree(lab_report, previous)
    run(["report", str(previous / "results.json")])
    assert [p.name for p in previous.parent.iterdir()] == ["out"]
    assert sorted(p.name for p in previous.iterdir()) == REPORT


# ------------------------------------------------------------------------- report given a bad results.json


def edited(lab_report: Path, edit: Callable[[dict], None]) -> str:
    results = json.loads((lab_report / "results.json").read_text())
    edit(results)
    return json.dumps(results)


BAD_RESULTS: dict[str, tuple[Callable[[Path], bytes | str | None], str]] = {
    "binary": (lambda _: b"\x89PNG\r\n\x1a\n\xff\xfe\x00", "not a lab results file (not UTF-8 text)"),
    "empty": (lambda _: "", "the file is empty"),
    "invalid JSON": (lambda _: '{"mlp": ', "not a lab results file (not JSON: Expecting value at line 1, column 9)"),
    "an array": (lambda _: "[]", "not a lab results file (an array in JSON, not an object)"),
    "an empty object": (
        lambda _: "{}",
        "not a lab results file (missing 'published', 'factorisation', 'rank_sweep', 'mlp', 'environment', "
        "'settings', 'wall_time_s', 'commands')",
    ),
    "no mlp": (lambda r: edited(r, lambda d: d.pop("mlp")), "not a lab results file (missing 'mlp')"),
    "an empty mlp": (lambda r: edited(r, lambda d: d.update(mlp={})), "not a lab results file (missing 'summary')"),
    "NaN": (
        lambda r: edited(r, lambda d: d.update(wall_time_s=float("nan"))),
        "not a lab results file (NaN is not a number the lab writes)",
    ),
    "a directory": (lambda _: None, "not a regular file"),
    "nested too deeply": (lambda _: "[" * 100000 + "]" * 100000, "not a lab results file (nested too deeply)"),
    "a number for a table": (
        lambda r: edited(r, lambda d: d["mlp"].update(summary=5)),
        "not a lab results file (a value of the wrong kind: 'int' object has no attribute 'items')",
    ),
    "text for a number": (
        lambda r: edited(r, lambda d: d.update(wall_time_s="abc")),
        "not a lab results file (a value of the wrong kind: Unknown format code 'f' for object of type 'str')",
    ),
}


@pytest.mark.parametrize("case", [*BAD_RESULTS, "missing"])
def test_report_of_a_file_that_is_not_a_labs_results(
    case: str, lab_report: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "x.json"
    content, problem = BAD_RESULTS.get(case, (lambda _: None, "no such file"))
    data = content(lab_report)
    if isinstance(data, bytes):
        path.write_bytes(data)
    elif isinstance(data, str):
        path.write_text(data)
    elif case == "a directory":
        path.mkdir()
    line = one_error_line(capsys, ["report", str(path), "--out", str(tmp_path / "out")])
    assert line == f"error: {path}: {problem}"
    assert not (tmp_path / "out").exists()  # refused before any folder was touched
