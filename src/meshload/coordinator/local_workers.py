"""Worker processes on this machine: `python -m meshload worker` in this interpreter, started and
stopped here for runs (`placement`) and studies (`study`) alike.

Each writes its output to a log file of its own, whose last line is the reason when it dies. It gets
the Redis URL in its environment, never on its command line: a password there would be readable by
every user of the machine (`ps`, `/proc/PID/cmdline`), the environment only by its owner. With a
private Redis it also gets a lifeline (`exit_with_parent`): its stdin is a pipe from this process,
and the end of that pipe (this process gone, however it ended) makes it leave at once, since nothing
it measures could be delivered any more. With a Redis of the user's, it goes on, so that the run can
be resumed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path

from ..errors import UsageError
from ..pipeline import wire

#: Local workers per CPU this process may use: more only share the same cores (and a thousand of them
#: would bury the machine), so the count is refused before anything starts. A fleet or Kubernetes
#: placement is not capped by this machine's CPUs.
MAX_LOCAL_WORKERS_PER_CPU = 4
#: How long a stopped worker gets to finish (deliver its records, deregister) before it is killed.
STOP_TIMEOUT_S = 10.0
#: The targets a worker spawned by the coordinator may send to: any (its user chose them).
ANY_TARGET = ("0.0.0.0/0", "::/0")


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity; a container's cpuset shows here)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def check_local_worker_count(count: int) -> None:
    """UsageError when `count` local worker processes are more than this machine can run usefully."""
    cpus = usable_cpus()
    most = MAX_LOCAL_WORKERS_PER_CPU * cpus
    if count > most:
        raise UsageError(
            f"--workers {count}: at most {most} local workers here ({MAX_LOCAL_WORKERS_PER_CPU} per CPU, {cpus} "
            f"CPU(s)); more would only share the same cores. Use --workers {most} or fewer, or a fleet "
            "(`meshload worker --redis URL` on other machines) or --workers k8s:N"
        )


def worker_command(worker_id: str, *, once: bool, idle_timeout_s: float, exit_with_parent: bool) -> list[str]:
    """The command line of one local worker (no secrets: see the module docstring)."""
    command = [sys.executable, "-m", "meshload", "worker", "--id", worker_id]
    command += ["--idle-timeout", f"{idle_timeout_s:g}s"]
    for network in ANY_TARGET:
        command += ["--allow-target", network]
    if once:
        command.append("--once")
    if exit_with_parent:
        command.append("--exit-with-parent")
    return command


def spawn_worker(
    redis_url: str,
    worker_id: str,
    log_path: Path,
    *,
    once: bool,
    idle_timeout_s: float,
    exit_with_parent: bool,
    niceness: int | None = None,
) -> subprocess.Popen[bytes]:
    """Start one worker writing to `log_path` (appended); `niceness` below 0 puts it ahead of the
    machine's other processes where that is allowed."""
    # The worker's own settings come from its command line, not from a fleet worker's variables
    # that happen to be set where the coordinator runs.
    environment = {name: value for name, value in os.environ.items() if not name.startswith("MESHLOAD_WORKER_")}
    environment[wire.REDIS_URL_ENV] = redis_url
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(
            worker_command(worker_id, once=once, idle_timeout_s=idle_timeout_s, exit_with_parent=exit_with_parent),
            stdin=subprocess.PIPE if exit_with_parent else subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=environment,
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
        cut_lifeline(process)


def cut_lifeline(process: subprocess.Popen[bytes]) -> None:
    """Close the pipe to a worker's stdin (its lifeline): a running worker leaves at once."""
    if process.stdin is not None:
        process.stdin.close()


def last_log_line(path: Path) -> str:
    """The last line a worker wrote (its error, when it died)."""
    lines = path.read_text(errors="replace").strip().splitlines() if path.exists() else []
    return lines[-1] if lines else "no message"
