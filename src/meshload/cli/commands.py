"""Registers every command module on the root `app` (one line per command)."""

from __future__ import annotations

from . import app

for _name in ("run", "worker", "testbed", "study", "report", "compare", "mesh", "history", "trend", "schedule"):
    try:
        _module = __import__(f"{__package__}.{_name}_cmd", fromlist=["register"])
    except ModuleNotFoundError as _exc:
        if _exc.name != f"{__package__}.{_name}_cmd":
            raise
        continue
    _module.register(app)
