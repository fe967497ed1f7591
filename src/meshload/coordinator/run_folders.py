"""Each coordinator's private folder (its Redis socket, pid file and worker logs) in one runtime
directory, and the reaping of what a coordinator that died left there.

A folder is named after its owner: `c<pid>-<start ticks>-<random>`, the coordinator's pid and its
process start time, so a folder says whose it is from the moment it exists (a pid alone could have
been reused by another process since). A private redis-server is recorded in its folder's
`redis.pid` (pid and start time) when it starts.

Reaping (at the start of every run and study) touches only folders whose owner is gone: it kills
the redis-server recorded there if that very process (same pid, same start time, this user's, its
title naming the folder's socket) still runs, and removes the folder. Folders of live coordinators,
other users' processes and anything outside the runtime directory are never touched, so runs
started at the same time on one machine leave each other alone.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

#: Where the folders live (default: $XDG_RUNTIME_DIR/meshload, else <temp>/meshload-<uid>).
RUNTIME_DIR_ENV = "MESHLOAD_RUNTIME_DIR"
REDIS_PID_FILE = "redis.pid"
#: Start times are compared to this precision (psutil reads them in clock ticks from /proc).
_START_TOLERANCE_S = 0.05


def runtime_dir() -> Path:
    """The directory that holds every coordinator's private folder (created 0700 if missing)."""
    configured = os.environ.get(RUNTIME_DIR_ENV)
    if configured:
        folder = Path(configured)
    elif os.environ.get("XDG_RUNTIME_DIR") and os.access(os.environ["XDG_RUNTIME_DIR"], os.W_OK):
        folder = Path(os.environ["XDG_RUNTIME_DIR"]) / "meshload"
    else:
        folder = Path(tempfile.gettempdir()) / f"meshload-{os.getuid()}"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


@dataclass(frozen=True)
class ProcessIdentity:
    """A process as it was when recorded: pid alone can be reused, pid and start time cannot."""

    pid: int
    started: float  # psutil's create_time(), seconds since the epoch

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity:
        return cls(pid, psutil.Process(pid).create_time())

    def running(self) -> psutil.Process | None:
        """The process, if this very process still runs (not a zombie, not a later one with its pid)."""
        try:
            process = psutil.Process(self.pid)
            if abs(process.create_time() - self.started) > _START_TOLERANCE_S:
                return None
            if process.status() == psutil.STATUS_ZOMBIE:
                return None
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None
        return process


def create_run_folder() -> Path:
    """A new private folder for this coordinator process, named after it."""
    me = ProcessIdentity.of(os.getpid())
    folder = runtime_dir() / f"c{me.pid}-{round(me.started * 100)}-{secrets.token_hex(3)}"
    folder.mkdir(mode=0o700)
    return folder


def owner_of(folder: Path) -> ProcessIdentity | None:
    """The coordinator a folder's name records, or None for a name that is not ours."""
    pid, _, rest = folder.name.removeprefix("c").partition("-")
    ticks, _, _ = rest.partition("-")
    if not folder.name.startswith("c") or not pid.isdigit() or not ticks.isdigit():
        return None
    return ProcessIdentity(int(pid), int(ticks) / 100)


def record_redis(folder: Path, pid: int) -> None:
    """Write the pid file of the private redis-server started for `folder`'s coordinator."""
    identity = ProcessIdentity.of(pid)
    (folder / REDIS_PID_FILE).write_text(json.dumps({"pid": identity.pid, "started": identity.started}))


def reap_leftovers() -> list[str]:
    """Kill the private redis-servers and remove the folders of coordinators that died; what was reaped."""
    reaped: list[str] = []
    try:
        folders = sorted(runtime_dir().iterdir())
    except OSError:
        return reaped
    for folder in folders:
        owner = owner_of(folder)
        if owner is None or not folder.is_dir() or owner.running() is not None:
            continue
        redis_pid = _kill_recorded_redis(folder)
        if redis_pid is not None:
            reaped.append(f"redis-server {redis_pid} of dead coordinator {owner.pid}")
        shutil.rmtree(folder, ignore_errors=True)
        reaped.append(f"folder {folder}")
    if reaped:
        log.info("reaped what dead runs left: %s", "; ".join(reaped))
    return reaped


def _kill_recorded_redis(folder: Path) -> int | None:
    """SIGKILL the folder's redis-server if it is exactly the one recorded; its pid, or None."""
    try:
        recorded = json.loads((folder / REDIS_PID_FILE).read_text())
        identity = ProcessIdentity(int(recorded["pid"]), float(recorded["started"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    process = identity.running()
    if process is None:
        return None
    try:
        title = " ".join(process.cmdline())
        ours = process.uids().real == os.getuid() and str(folder) in title and "redis-server" in title
        if not ours:
            return None
        os.kill(identity.pid, signal.SIGKILL)
    except (psutil.Error, ProcessLookupError, PermissionError):
        return None
    return identity.pid
