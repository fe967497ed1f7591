"""Where a run's workers come from: idle workers of a running fleet (`meshload worker --redis URL` on
other nodes), or worker processes spawned on this machine for the run (the same `meshload worker`
code, with `--once`).

A spawned worker gets the Redis URL in its environment, never on its command line: a password there
would be readable by every user of the machine (`ps`, `/proc/PID/cmdline`), the environment only by
its owner. With a private Redis, it also gets a lifeline: its stdin is a pipe from the coordinator,
and the end of that pipe (the coordinator gone, however it ended) makes it leave at once, since
nothing it measures could be delivered any more. With a Redis of the user's, it goes on, so that the
run can be resumed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

import redis

from ..errors import RunError
from ..pipeline import wire

Placement = Literal["auto", "local", "fleet"]

#: How long spawned workers may take to start and register (imports on a busy machine).
SPAWN_TIMEOUT_S = 30.0
#: A spawned worker that gets no assignment for this long leaves by itself.
SPAWNED_IDLE_TIMEOUT_S = 60.0
#: How long finished local workers get to exit before they are terminated.
EXIT_TIMEOUT_S = 10.0


@dataclass
class Workers:
    """The workers of one run, and the local processes to clean up after it."""

    ids: list[str]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    _log_files: list[IO[bytes]] = field(default_factory=list)

    @property
    def local(self) -> bool:
        return bool(self.processes)

    def exited(self, worker_id: str) -> bool:
        process = self.processes.get(worker_id)
        return process is not None and process.poll() is not None

    def last_log_line(self, worker_id: str) -> str:
        """The last line a local worker wrote (its error, when it died)."""
        path = self.logs.get(worker_id)
        return _last_line(path) if path is not None else "no log (a fleet worker)"

    def release(self) -> None:
        """Let local workers exit (they leave after their run); terminate those that do not."""
        deadline = time.monotonic() + EXIT_TIMEOUT_S
        for process in self.processes.values():
            try:
                process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(EXIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log_file in self._log_files:
            log_file.close()
        self._log_files.clear()
        for process in self.processes.values():
            if process.stdin is not None:
                process.stdin.close()


def place_workers(
    client: redis.Redis,
    redis_url: str,
    count: int,
    *,
    run_id: str,
    placement: Placement,
    log_dir: Path,
    exit_with_parent: bool = False,
) -> Workers:
    """`count` workers for the run: from the fleet when it has any idle worker (`auto`), else spawned
    (`exit_with_parent`: spawned workers leave when this process ends, for a private Redis)."""
    if placement != "local":
        idle = idle_fleet_workers(client)
        if idle and len(idle) >= count:
            return Workers(ids=idle[:count])
        if placement == "fleet" or idle:
            raise RunError(
                f"the fleet at {wire.redacted(redis_url)} has {len(idle)} idle worker(s) but the run needs "
                f"{count}; start more with `meshload worker --redis URL` or ask for --workers {len(idle) or 1}"
            )
    return spawn_local_workers(
        client, redis_url, count, run_id=run_id, log_dir=log_dir, exit_with_parent=exit_with_parent
    )


def idle_fleet_workers(client: redis.Redis) -> list[str]:
    """Registered long-lived workers that are alive and not busy, in id order."""
    registered = client.hgetall(wire.fleet_key())
    idle: list[str] = []
    stale: list[bytes | str] = []
    for raw_id, raw_info in sorted(registered.items()):
        info = wire.decode_worker_info(raw_info)
        state = client.get(wire.worker_alive_key(info.id))
        if state is None:
            stale.append(raw_id)
        elif state == b"idle" and not info.once:
            idle.append(info.id)
    if stale:
        client.hdel(wire.fleet_key(), *stale)  # workers that died without leaving
    return idle


#: The targets a worker spawned by the coordinator may send to: any (its user chose them).
ANY_TARGET = ("0.0.0.0/0", "::/0")


def worker_command(worker_id: str, *, once: bool, idle_timeout_s: float, exit_with_parent: bool) -> list[str]:
    """The command line of one spawned worker: `meshload worker` in this interpreter (no secrets)."""
    command = [sys.executable, "-c", "from meshload.cli import main; main()", "worker", "--id", worker_id]
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
    log_file: IO[bytes],
    *,
    once: bool,
    idle_timeout_s: float,
    exit_with_parent: bool,
) -> subprocess.Popen[bytes]:
    """Start one `meshload worker` process on this machine (see the module docstring)."""
    # The worker's own settings come from its command line, not from a fleet worker's variables
    # that happen to be set where the coordinator runs.
    environment = {name: value for name, value in os.environ.items() if not name.startswith("MESHLOAD_WORKER_")}
    environment[wire.REDIS_URL_ENV] = redis_url
    return subprocess.Popen(
        worker_command(worker_id, once=once, idle_timeout_s=idle_timeout_s, exit_with_parent=exit_with_parent),
        stdin=subprocess.PIPE if exit_with_parent else subprocess.DEVNULL,
        stdout=log_file,
        stderr=log_file,
        env=environment,
    )


def spawn_local_workers(
    client: redis.Redis, redis_url: str, count: int, *, run_id: str, log_dir: Path, exit_with_parent: bool = False
) -> Workers:
    """Start `count` worker processes and wait until each has registered."""
    log_dir.mkdir(parents=True, exist_ok=True)
    workers = Workers(ids=[f"{run_id}-w{index}" for index in range(count)])
    try:
        for worker_id in workers.ids:
            log_path = log_dir / f"{worker_id}.log"
            log_file = open(log_path, "wb")  # noqa: SIM115 - closed by Workers.release
            workers._log_files.append(log_file)
            workers.logs[worker_id] = log_path
            workers.processes[worker_id] = spawn_worker(
                redis_url,
                worker_id,
                log_file,
                once=True,
                idle_timeout_s=SPAWNED_IDLE_TIMEOUT_S,
                exit_with_parent=exit_with_parent,
            )
        _wait_for_registration(client, workers)
    except BaseException:
        for process in workers.processes.values():
            process.kill()
        workers.release()
        raise
    return workers


def _wait_for_registration(client: redis.Redis, workers: Workers) -> None:
    deadline = time.monotonic() + SPAWN_TIMEOUT_S
    waiting = set(workers.ids)
    while waiting:
        for worker_id in sorted(waiting):
            if workers.exited(worker_id):
                raise RunError(f"local worker {worker_id} exited at start: {_last_line(workers.logs[worker_id])}")
            if client.exists(wire.worker_alive_key(worker_id)):
                waiting.discard(worker_id)
        if not waiting:
            return
        if time.monotonic() > deadline:
            first = min(waiting)
            raise RunError(
                f"{len(waiting)} local worker(s) did not register within {SPAWN_TIMEOUT_S:g}s "
                f"({first}: {_last_line(workers.logs[first])}); is the machine overloaded?"
            )
        time.sleep(0.05)


def _last_line(path: Path) -> str:
    lines = path.read_text(errors="replace").strip().splitlines() if path.exists() else []
    return lines[-1] if lines else "no message"
