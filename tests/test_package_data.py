"""The package data: every file under src/meshload that is not Python (templates, built-in scenarios,
the plan format it points users to) is in what users install. CI runs the suite against the
installed package; from a source tree, a wheel is built here to check the same."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import distributions
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "src" / "meshload"
#: Code, not data: Python, and the compiled module's source and what an in-place build leaves.
_CODE = (".py", ".pyc", ".pyx", ".c", ".so")


def _data_files() -> set[str]:
    """The non-Python files of the source tree, as paths inside the package ("meshload/...")."""
    return {
        path.relative_to(SOURCE.parent).as_posix()
        for path in SOURCE.rglob("*")
        if path.is_file() and path.suffix not in _CODE and "__pycache__" not in path.parts
    }


def _installed_files() -> set[str] | None:
    """What the installed distribution holds, when meshload is installed (not a source tree)."""
    import meshload

    if Path(meshload.__file__).resolve().is_relative_to(SOURCE.resolve()):
        return None
    # The distribution installed beside the imported package: a lookup by name alone searches every
    # sys.path entry, and the current folder (a source tree with its build's egg-info) may come first.
    site = str(Path(meshload.__file__).resolve().parents[1])
    found = [dist for dist in distributions(path=[site]) if dist.metadata["Name"] == "meshload"]
    if not found:
        return None
    return {file.as_posix() for file in found[0].files or []}


@pytest.mark.timeout(120)
def test_every_data_file_of_the_source_tree_is_in_the_package(tmp_path: Path) -> None:
    expected = _data_files()
    assert {"meshload/results/templates/report.html.j2", "meshload/scenarios/FORMAT.md"} <= expected
    shipped = _installed_files()
    if shipped is None:  # a source tree: what `pip install .` would ship is what the wheel holds
        tree = tmp_path / "tree"  # built from a copy, so no build/ folder lands in the checkout
        shutil.copytree(SOURCE, tree / "src" / "meshload", ignore=shutil.ignore_patterns("__pycache__"))
        for name in ("pyproject.toml", "setup.py", "README.md"):
            shutil.copy(REPO / name, tree / name)
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), "."],
            cwd=tree,
            check=True,
            capture_output=True,
        )
        [wheel] = tmp_path.glob("meshload-*.whl")
        shipped = set(zipfile.ZipFile(wheel).namelist())
    missing = sorted(expected - shipped)
    assert missing == [], f"not in the package (add them to [tool.setuptools.package-data]): {missing}"
    # The compiled response path is built at install time, not left to a source tree.
    assert any(name.startswith("meshload/worker/hot_path.") and name.endswith(".so") for name in shipped), (
        "meshload/worker/hot_path was not compiled into the package"
    )
