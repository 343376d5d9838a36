"""The layout by role: imports run one way, from the entry point down, and never in a circle."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lab2_lightning"
# Entry point first; a module may import only from its own layer or the ones after it.
LAYERS = ["cli", "commands", "lab", "callbacks", "models", "data", "utils"]
LAYER_OF = {"__main__": "cli", "__init__": "utils", "configs": "data"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    return LAYERS.index(LAYER_OF.get(top, top))


def imports() -> dict[str, set[str]]:
    """Each module of the package and the package's modules it imports, at any depth of its code."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lab2_lightning"):
                for alias in node.names:  # ``from lab2_lightning.lab import sweep`` imports a module
                    found.add(
                        f"{node.module}.{alias.name}"
                        if (PACKAGE.parent / f"{node.module}.{alias.name}".replace(".", "/"))
                        .with_suffix(".py")
                        .exists()
                        else node.module
                    )
            elif isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names if alias.name.startswith("lab2_lightning")}
        graph[module_name(path)] = found - {module_name(path)}
    return graph


def test_imports_run_from_the_entry_point_down() -> None:
    upward = [
        f"{module} imports {target}"
        for module, targets in imports().items()
        for target in targets
        if target != "lab2_lightning" and module != "lab2_lightning" and layer(target) < layer(module)
    ]
    assert not upward, upward
    order = ["cli", "commands", "lab.sweep", "callbacks.summary"]
    assert sorted(order, key=lambda name: layer(f"lab2_lightning.{name}")) == order


def test_no_import_cycles() -> None:
    graph = imports()
    state: dict[str, str] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for target in graph.get(module, ()):
            assert state.get(target) != "open", " -> ".join([*trail, module, target])
            if target not in state:
                visit(target, [*trail, module])
        state[module] = "done"

    for module in graph:
        if module not in state:
            visit(module, [])
