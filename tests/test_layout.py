"""The layout's import rules (DESIGN.md, "Layout"), read from every module's imports: which folder of
meshload may import which. The top-level modules beside the folders (`errors`, `terminal`,
`interrupts`) import nothing of meshload and every folder may use them, as it may the package's own
`__version__`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import meshload

PACKAGE = Path(meshload.__file__).parent
TOP_LEVEL = {"errors", "terminal", "interrupts"}
PACKAGE_ATTRIBUTES = {"__version__"}
#: Folder -> the folders of meshload its modules may import.
MAY_IMPORT: dict[str, set[str]] = {
    "scenarios": set(),
    "results": {"scenarios"},
    "pipeline": {"scenarios", "results"},
    "worker": {"scenarios", "results", "pipeline"},
    # The plugin is a worker on Locust's workers (the recording helpers it shares with the worker's
    # Locust engine) and a coordinator on Locust's master (a private Redis, the run's environment).
    "locust": {"scenarios", "results", "pipeline", "worker", "coordinator"},
    "testbed": set(),
    # The results store, trends and schedules keep what runs and studies measured.
    "history": {"scenarios", "results"},
    # The coordinator drives workers, meshes, the testbed and the schedules, but never the command line
    # above it.
    "coordinator": {"scenarios", "results", "pipeline", "worker", "testbed", "history"},
}


def _meshload_imports(path: Path) -> set[str]:
    """The first-level names under `meshload` that the module at `path` imports."""
    module_parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    package_parts = module_parts[:-1]  # a package's __init__ counts as inside it
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - node.level + 1]
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
                names = [target] if node.module else [f"{target}.{alias.name}" for alias in node.names]
            else:
                names = [node.module or ""]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "meshload" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("folder", sorted(MAY_IMPORT))
def test_each_folder_imports_only_what_the_layout_allows(folder: str) -> None:
    modules = sorted((PACKAGE / folder).rglob("*.py")) if (PACKAGE / folder).is_dir() else []
    if folder in ("scenarios", "results", "pipeline", "worker", "testbed", "coordinator"):
        assert modules, f"meshload/{folder} has no modules"
    allowed = MAY_IMPORT[folder] | TOP_LEVEL | PACKAGE_ATTRIBUTES | {folder}
    wrong = {
        str(path.relative_to(PACKAGE)): sorted(_meshload_imports(path) - allowed)
        for path in modules
        if _meshload_imports(path) - allowed
    }
    assert wrong == {}, f"imports the layout forbids: {wrong}"


def test_the_top_level_modules_import_nothing_of_meshload() -> None:
    for name in TOP_LEVEL:
        assert _meshload_imports(PACKAGE / f"{name}.py") == set(), name
