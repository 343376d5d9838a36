"""The package as a user installs it: a wheel that holds the configs and ``iris.data``, installed into a fresh
virtual environment, runs ``lab2 fit`` on a packaged config and the whole lab from an empty directory; the editable
install sees the same configs; files are written with the usual permissions."""

from __future__ import annotations

import os
import shutil
import site
import stat
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from lab2_lightning.utils.atomic import write_text
from tests.conftest import subprocess_timeout

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["pyproject.toml", "README.md", "lab2_lightning", "configs"]


def sh(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=subprocess_timeout())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built, without network, from a copy of the sources (nothing is written into the checkout)."""
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("wheels")
    done = sh(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", out, src,
              cwd=src)  # fmt: skip
    assert done.returncode == 0, done.stderr
    (built,) = out.glob("lab2_lightning-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel installed; returns its ``bin``.

    Nothing is downloaded: the environment is made from the base interpreter, and a ``.pth`` file puts this
    environment's site-packages (where torch, Lightning and the rest are installed, not in the system's) after its
    own. Only site directories have their ``.pth`` files read, so the checkout's editable install stays out of it:
    ``lab2_lightning`` comes from the wheel.
    """
    env = tmp_path_factory.mktemp("venv")
    done = sh(sys.executable, "-m", "venv", "--without-pip", env, cwd=env)
    assert done.returncode == 0, done.stderr
    python = env / "bin" / "python"
    purelib = sh(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=env).stdout.strip()
    ours = sorted({*site.getsitepackages(), sysconfig.get_paths()["purelib"]})
    (Path(purelib) / "lab2_test_dependencies.pth").write_text("".join(f"{path}\n" for path in ours))
    done = sh(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
              "--ignore-installed", wheel, cwd=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return env / "bin"


def test_the_wheel_holds_every_package_the_configs_and_the_data(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for config in ("factorise", "mlp", "mlp_mean", "large"):
        assert f"lab2_lightning/configs/{config}.yaml" in names
    assert "lab2_lightning/data/iris.data" in names
    # pyproject.toml lists the packages (configs/ is mapped in, which packages.find cannot see): none forgotten.
    packages = [p.parent.relative_to(ROOT).as_posix() for p in (ROOT / "lab2_lightning").rglob("__init__.py")]
    assert packages and all(f"{package}/__init__.py" in names for package in packages)
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "lab2 = lab2_lightning.cli:main" in entry_points and "lab2-train" not in entry_points


def test_lab2_fit_on_a_packaged_config_from_an_empty_directory(venv: Path, tmp_path: Path) -> None:
    where = sh(venv / "python", "-c", "import lab2_lightning.configs as c; print(c.path('mlp'))", cwd=tmp_path)
    assert where.stdout.strip().startswith(str(venv.parent)), where  # the wheel's, not the checkout's
    done = sh(venv / "lab2", "fit", "--config", "factorise", "--trainer.max_steps", "3", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == f"results: {tmp_path / 'lightning_logs' / 'version_0' / 'results.json'}"


def test_lab2_lab_from_an_empty_directory(venv: Path, tmp_path: Path) -> None:
    done = sh(venv / "lab2", "lab", "--seeds", "1", "--factorise_epochs", "5", "--mlp_epochs", "5", "--out", "reports",
              cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "reports" / "lab2.md").is_file()


def test_the_editable_install_sees_the_checkouts_configs(tmp_path: Path) -> None:
    done = sh(sys.executable, "-c", "import lab2_lightning.configs as c; print(c.path('mlp'))", cwd=tmp_path)
    assert done.stdout.strip() == str(ROOT / "configs" / "mlp.yaml"), done


def test_written_files_have_the_usual_permissions(tmp_path: Path) -> None:
    """``mkstemp`` makes its files 0600: reports, results and predictions used to be unreadable by others."""
    before = os.umask(0o022)
    try:
        assert stat.S_IMODE(write_text(tmp_path / "a.txt", "a").stat().st_mode) == 0o644
        os.umask(0o077)
        assert stat.S_IMODE(write_text(tmp_path / "b.txt", "b").stat().st_mode) == 0o600
    finally:
        os.umask(before)
