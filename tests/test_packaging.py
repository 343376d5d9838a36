"""What ships: the configs and UCI's iris.data inside the package, every package listed in pyproject.toml, and the
``lab2`` console command."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from importlib import import_module, resources
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from conftest import REPO, error_line, subprocess_env

from lab2_lightning import configs
from lab2_lightning.data.reading import packaged_iris
from lab2_lightning.errors import LabError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    from pip._vendor import tomli as tomllib

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SHARED_IRIS = Path("/work/shared/data/iris.data")
CONFIGS = ["complete", "factorise", "large", "mlp", "mlp_mean"]


def test_the_configs_ship_with_the_package() -> None:
    """The packaged configs are package resources, found by name."""
    shipped = resources.files("lab2_lightning.configs")
    for name in CONFIGS:
        assert (shipped / f"{name}.yaml").is_file(), name
        assert configs.path(name).read_text() == (shipped / f"{name}.yaml").read_text()
        assert configs.path(f"{name}.yaml") == configs.path(name)
    assert configs.names() == CONFIGS


def test_an_unknown_config_name_lists_the_packaged_ones() -> None:
    """Asking for a config the package does not have names it and the ones there are."""
    with pytest.raises(LabError) as error:
        configs.path("nope")
    assert "nope" in str(error.value)
    for name in CONFIGS:
        assert name in str(error.value)


def test_iris_data_is_ucis_file() -> None:
    """The packaged iris.data is UCI's (sha256 6f608b71...), byte-identical to the shared copy where there is one."""
    data = packaged_iris().read_bytes()
    assert hashlib.sha256(data).hexdigest().startswith("6f608b71")
    assert len([line for line in data.decode().splitlines() if line.strip()]) == 150
    if not SHARED_IRIS.is_file():
        pytest.skip(f"{SHARED_IRIS} is not here to compare with")
    assert data == SHARED_IRIS.read_bytes()


def test_pyproject_lists_every_package_folder() -> None:
    """Every folder of Python modules in the package is listed in pyproject's packages (configs/ is mapped in, which
    automatic discovery would miss), and each listed package exists."""
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    mapped = PYPROJECT["tool"]["setuptools"].get("package-dir", {})
    on_disk = {
        ".".join(folder.relative_to(REPO).parts)
        for folder in {p.parent for p in (REPO / "lab2_lightning").rglob("*.py")}
        if "__pycache__" not in folder.parts
    }
    on_disk |= {name for name, folder in mapped.items() if list((REPO / folder).glob("*.py"))}
    assert on_disk - listed == set()
    assert listed - on_disk == set()
    for package in listed:
        assert import_module(package) is not None


def test_pyproject_ships_the_data_and_the_configs() -> None:
    """The package data name iris.data and the configs' YAML files."""
    data = PYPROJECT["tool"]["setuptools"]["package-data"]
    assert "data/iris.data" in data["lab2_lightning"]
    assert "*.yaml" in data["lab2_lightning.configs"]
    assert PYPROJECT["tool"]["setuptools"]["package-dir"]["lab2_lightning.configs"] == "configs"


def _declared_entry() -> str:
    return PYPROJECT["project"]["scripts"]["lab2"]


def _console_script(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the ``lab2`` command as the console script pip generates from pyproject's entry point runs it:
    ``sys.exit(main())``."""
    module, function = _declared_entry().split(":")
    wrapper = f"import sys; from {module} import {function}; sys.argv[0] = 'lab2'; sys.exit({function}())"
    command = [sys.executable, "-c", wrapper, *args]
    return subprocess.run(command, cwd=cwd, env=subprocess_env(), capture_output=True, text=True, timeout=300)


def test_the_declared_entry_point_is_in_the_error_boundary() -> None:
    """pyproject's ``lab2`` entry point is a function of lab2_lightning.main (which imports neither torch nor
    Lightning, so signals are caught at once)."""
    module, function = _declared_entry().split(":")
    assert module == "lab2_lightning.main"
    assert callable(getattr(import_module(module), function))


def test_the_installed_lab2_command_is_the_declared_one() -> None:
    """The installed ``lab2`` script runs the entry point pyproject declares."""
    installed = [e.value for e in entry_points(group="console_scripts") if e.name == "lab2"]
    if installed != [_declared_entry()]:
        pytest.skip(f"stale install: lab2 runs {installed}, pyproject declares {_declared_entry()}: pip install -e .")
    assert (Path(sys.executable).parent / "lab2").is_file()


def test_the_lab2_command_exits_0_after_a_fit(tmp_path: Path) -> None:
    """``lab2 fit ...`` through the console script exits 0 with its headline, and no results dump on stderr."""
    done = _console_script("fit", "--config", "factorise", "--trainer.max_steps", "5", "--trainer.enable_progress_bar",
                           "false", cwd=tmp_path)  # fmt: skip
    assert (tmp_path / "lightning_logs/version_0/results.json").is_file()
    assert done.stdout.strip().splitlines()[-1] == "results: lightning_logs/version_0/results.json"
    assert "'runs'" not in done.stderr
    assert done.returncode == 0


def test_the_lab2_command_reports_a_user_error_in_one_line(tmp_path: Path) -> None:
    """``lab2 fitt`` through the console script exits 2 with one ``error:`` line naming the word."""
    done = _console_script("fitt", cwd=tmp_path)
    assert done.returncode == 2
    assert "fitt" in error_line(done.stderr)
