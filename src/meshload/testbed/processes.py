"""Starting and stopping the testbed's processes so that none outlives `down`.

Each process starts in its own session (it survives the process that started it, e.g. `meshload
testbed up`, and a signal to its group reaches its children) and carries the testbed's mark in its
environment. Its pid and start time are recorded in the state folder, so a later `down` from another
process finds it, and never kills an unrelated process that reused the pid. `down` also looks for
marked processes, which covers a controller killed between a start and its record.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

MARK_ENV = "MESHLOAD_TESTBED_MARK"
STOP_GRACE_S = 3.0  # SIGTERM first, SIGKILL after this


@dataclass
class ProcessRecord:
    name: str  # "productpage-v1", "productpage-v1-sidecar", "ingress-gateway"
    kind: str  # "app", "sidecar", "ingress"
    pid: int
    started: float  # psutil create_time, tells a reused pid apart

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> ProcessRecord:
        return cls(**data)


def spawn(
    argv: list[str],
    *,
    name: str,
    kind: str,
    mark: str,
    log_path: Path,
    pass_fds: tuple[int, ...] = (),
    env: dict | None = None,
) -> tuple[ProcessRecord, subprocess.Popen]:
    """Start `argv` detached in its own session, output appended to `log_path`."""
    environment = dict(os.environ if env is None else env)
    environment[MARK_ENV] = mark
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=pass_fds,
            start_new_session=True,
            env=environment,
        )
    try:
        started = psutil.Process(process.pid).create_time()
    except psutil.NoSuchProcess:
        started = 0.0
    return ProcessRecord(name=name, kind=kind, pid=process.pid, started=started), process


def _process_of(record: ProcessRecord) -> psutil.Process | None:
    try:
        process = psutil.Process(record.pid)
        if abs(process.create_time() - record.started) > 0.01 or process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process
    except psutil.Error:
        return None


def is_alive(record: ProcessRecord) -> bool:
    return _process_of(record) is not None


def marked_processes(mark: str) -> list[psutil.Process]:
    """Live processes carrying `mark` (reads every process's environment: for `down` only)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get(MARK_ENV) == mark and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except psutil.Error:
            continue
    return found


def stop_all(processes: list[psutil.Process], grace_s: float = STOP_GRACE_S) -> list[int]:
    """SIGTERM each process's group, SIGKILL what is left after `grace_s`; the pids still alive."""
    for process in processes:
        _signal_group(process, signal.SIGTERM)
    alive = _wait_dead(processes, grace_s)
    for process in alive:
        _signal_group(process, signal.SIGKILL)
    return [process.pid for process in _wait_dead(alive, grace_s)]


def _wait_dead(processes: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """Wait until each process has exited; a zombie counts as exited (its parent, maybe not us,
    reaps it), and our own children are reaped here. The ones still running after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    alive = list(processes)
    while alive:
        psutil.wait_procs(alive, timeout=0)  # reaps those that are our children
        alive = [process for process in alive if _running(process)]
        if not alive or time.monotonic() >= deadline:
            break
        time.sleep(0.01)
    return alive


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def stop_records(records: list[ProcessRecord], grace_s: float = STOP_GRACE_S) -> list[int]:
    return stop_all([p for p in (_process_of(r) for r in records) if p is not None], grace_s)


def _signal_group(process: psutil.Process, signum: int) -> None:
    try:
        pgid = os.getpgid(process.pid)
        if pgid == process.pid:  # leads its own group (it does, when started by `spawn`)
            os.killpg(pgid, signum)
        else:
            process.send_signal(signum)
    except (ProcessLookupError, PermissionError, psutil.Error):
        pass


def wait_gone(records: list[ProcessRecord], timeout_s: float) -> list[ProcessRecord]:
    """Wait until the recorded processes have exited; those still running after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    remaining = list(records)
    while remaining and time.monotonic() < deadline:
        remaining = [record for record in remaining if is_alive(record)]
        if remaining:
            time.sleep(0.02)
    return remaining
