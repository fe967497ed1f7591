"""The testbed's state folder: what is running, on which ports, with which function.

state.json     function, parameters, ports, process records, mark
lock           held (flock) while `up`, `apply` or `down` change anything
config/        generated HAProxy configurations and the fault-delay Lua script
certs/         the testbed CA and workload certificates
logs/          every process's output (access logs too, under `access-log`)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

from .errors import TestbedFailure

STATE_DIR_ENV = "MESHLOAD_TESTBED_DIR"


def default_state_dir() -> Path:
    if os.environ.get(STATE_DIR_ENV):
        return Path(os.environ[STATE_DIR_ENV])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "meshload" / "testbed"


class StateFolder:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.state_file = root / "state.json"
        self.config_dir = root / "config"
        self.certs_dir = root / "certs"
        self.logs_dir = root / "logs"

    def make(self) -> None:
        for folder in (self.root, self.config_dir, self.certs_dir, self.logs_dir):
            folder.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def load(self) -> dict | None:
        try:
            return json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return None
        except ValueError as exc:  # written atomically, so only a hand edit gets here
            raise TestbedFailure(
                f"{self.state_file} is damaged ({exc}); delete it, and stop by pid any testbed process "
                "left (haproxy, python -m meshload.testbed.apps)"
            ) from exc

    def save(self, state: dict) -> None:
        temporary = self.state_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(state, indent=2, sort_keys=True))
        temporary.replace(self.state_file)  # readers never see half a file

    def clear(self) -> None:
        self.state_file.unlink(missing_ok=True)

    def log(self, process_name: str) -> Path:
        return self.logs_dir / f"{process_name}.log"


def log_tail(path: Path, lines: int = 5) -> str:
    """The last lines of a process's output, on one line, for an error message."""
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:]) or "(no output)"
    except FileNotFoundError:
        return "(no output)"
