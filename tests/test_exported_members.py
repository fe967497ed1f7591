"""Each package's `__all__` lists exactly its public names, sorted (as httpx's test does).

A folder's `__init__.py` names what the folder offers; the rest is private to it. A package that
offers nothing yet (no public names, no `__all__`) passes.
"""

from __future__ import annotations
import __future__

import importlib
import inspect
from pathlib import Path

import pytest

import meshload

PACKAGE_ROOT = Path(meshload.__file__).parent
PACKAGES = sorted(
    ".".join(("meshload", *init.parent.relative_to(PACKAGE_ROOT).parts)) for init in PACKAGE_ROOT.rglob("__init__.py")
)


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


@pytest.mark.parametrize("package_name", PACKAGES)
def test_all_is_complete_and_sorted(package_name: str) -> None:
    package = importlib.import_module(package_name)
    public = _public_names(package)
    exported = getattr(package, "__all__", None)
    if exported is None:
        assert public == [], f"{package_name} binds {sorted(public)} but has no __all__"
        return
    # httpx sorts case-insensitively; a plain (code point) sort is accepted too, as long as it is sorted.
    assert exported in (sorted(exported), sorted(exported, key=str.casefold)), f"{package_name}.__all__ is not sorted"
    assert len(exported) == len(set(exported)), f"{package_name}.__all__ lists a name twice"
    assert sorted(exported) == sorted(public), f"{package_name}.__all__ differs from its public names"
