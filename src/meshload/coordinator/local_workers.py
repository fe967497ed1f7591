"""Worker processes on this machine: `python -m meshload worker` in this interpreter, started and
stopped here for runs (`placement`) and studies (`study`) alike.

Each writes its output to a log file of its own, whose last line is the reason when it dies.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path

#: How long a stopped worker gets to finish (deliver its records, deregister) before it is killed.
STOP_TIMEOUT_S = 10.0


def worker_command(redis_url: str, worker_id: str, *, once: bool, idle_timeout_s: float) -> list[str]:
    """The command line of one local worker."""
    command = [sys.executable, "-m", "meshload", "worker", "--redis", redis_url, "--id", worker_id]
    if once:
        command.append("--once")
    return [*command, "--idle-timeout", f"{idle_timeout_s:g}s"]


def spawn_worker(
    redis_url: str,
    worker_id: str,
    log_path: Path,
    *,
    once: bool,
    idle_timeout_s: float,
    niceness: int | None = None,
) -> subprocess.Popen[bytes]:
    """Start one worker writing to `log_path` (appended); `niceness` below 0 puts it ahead of the
    machine's other processes where that is allowed."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(
            worker_command(redis_url, worker_id, once=once, idle_timeout_s=idle_timeout_s),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    if niceness is not None:
        # Where raising the priority is not allowed, the generator's self-check still flags late sends.
        with suppress(PermissionError):
            os.setpriority(os.PRIO_PROCESS, process.pid, niceness)
    return process


def stop_workers(processes: Iterable[subprocess.Popen[bytes]], *, exit_grace_s: float = 0.0) -> None:
    """Stop workers: those still running after `exit_grace_s` (time to leave by themselves) are
    terminated, and killed if they have not exited `STOP_TIMEOUT_S` later."""
    processes = list(processes)
    deadline = time.monotonic() + exit_grace_s
    for process in processes:
        with suppress(subprocess.TimeoutExpired):
            process.wait(max(deadline - time.monotonic(), 0.0))
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def last_log_line(path: Path) -> str:
    """The last line a worker wrote (its error, when it died)."""
    lines = path.read_text(errors="replace").strip().splitlines() if path.exists() else []
    return lines[-1] if lines else "no message"
