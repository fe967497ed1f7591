"""Each package's `__all__` lists exactly its public names, sorted (as httpx's test does).

A folder's `__init__.py` names what the folder offers; the rest is private to it. A package that
offers nothing yet (no public names, no `__all__`) passes.
"""

from __future__ import annotations
import __future__

import importlib
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

import meshload

PACKAGE_ROOT = Path(meshload.__file__).parent
PACKAGES = sorted(
    ".".join(("meshload", *init.parent.relative_to(PACKAGE_ROOT).parts)) for init in PACKAGE_ROOT.rglob("__init__.py")
)
#: Packages whose import changes the whole process (meshload.locust imports locust, which monkey-patches
#: the standard library for gevent): looked at in a fresh interpreter, never in the test process.
IMPORTED_APART = {"meshload.locust"}


def _public_names(module: object) -> list[str]:
    """Names a package binds that are meant for its users: not private, not submodules, not
    `from __future__` features."""
    return [
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not inspect.ismodule(value) and not isinstance(value, __future__._Feature)
    ]


def test_the_packages_looked_at_include_scenarios_and_results() -> None:
    assert {"meshload.scenarios", "meshload.results"} <= set(PACKAGES)


def _names_of(package_name: str) -> tuple[list[str], list[str] | None]:
    """(public names, __all__ or None) of a package."""
    if package_name in IMPORTED_APART:
        code = (
            f"import importlib, json; package = importlib.import_module({package_name!r}); "
            "from tests.test_exported_members import _public_names; "
            "print(json.dumps([_public_names(package), getattr(package, '__all__', None)]))"
        )
        root = Path(__file__).resolve().parents[1]
        answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True)
        public, exported = json.loads(answer.stdout.splitlines()[-1])
        return public, exported
    package = importlib.import_module(package_name)
    return _public_names(package), getattr(package, "__all__", None)


@pytest.mark.parametrize("package_name", PACKAGES)
def test_all_is_complete_and_sorted(package_name: str) -> None:
    public, exported = _names_of(package_name)
    if exported is None:
        assert public == [], f"{package_name} binds {sorted(public)} but has no __all__"
        return
    # httpx sorts case-insensitively; a plain (code point) sort is accepted too, as long as it is sorted.
    assert exported in (sorted(exported), sorted(exported, key=str.casefold)), f"{package_name}.__all__ is not sorted"
    assert len(exported) == len(set(exported)), f"{package_name}.__all__ lists a name twice"
    assert sorted(exported) == sorted(public), f"{package_name}.__all__ differs from its public names"
