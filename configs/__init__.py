"""The configs that ship with the package, by name: ``lab2 fit --config factorise`` outside the checkout too.

This directory stays at the top of the repository, where a reader looks for configs, and is installed as the
package ``lab2_lightning.configs`` (``package-dir`` in pyproject.toml), so an editable install and a wheel find the
same files through :mod:`importlib.resources`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from lab2_lightning.errors import LabError

if TYPE_CHECKING:
    from importlib.abc import Traversable

SUFFIX = ".yaml"


def names() -> list[str]:
    """The packaged configs' names, without ``.yaml``."""
    return sorted(entry.name.removesuffix(SUFFIX) for entry in resources.files(__name__).iterdir() if is_config(entry))


def is_config(entry: Traversable) -> bool:
    return entry.is_file() and entry.name.endswith(SUFFIX)


def path(name: str) -> Path:
    """The file of the packaged config ``name`` (``factorise`` or ``factorise.yaml``); a ``LabError`` naming the
    packaged configs when there is none of that name."""
    entry = resources.files(__name__) / (name if name.endswith(SUFFIX) else name + SUFFIX)
    if "/" in name or not is_config(entry):
        raise LabError(f"--config {name}: no such file, nor a packaged config (those are: {', '.join(names())})")
    # Installed packages are directories (a wheel is unpacked), so the resource is a real file with a path.
    return Path(str(entry))
