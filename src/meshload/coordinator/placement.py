"""Where a run's workers come from: idle workers of a running fleet (`meshload worker --redis URL` on
other nodes), the workers of a Kubernetes fleet scaled up for the run (`k8s_placement`), or worker
processes spawned on this machine for the run (the same `meshload worker` code, with `--once`; see
`local_workers` for how they are started and stopped)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import redis

from ..errors import RunError
from ..pipeline import wire
from .local_workers import check_local_worker_count, last_log_line, spawn_worker, stop_workers

if TYPE_CHECKING:
    from .k8s_placement import KubernetesFleet

#: auto: idle fleet workers if any, else local processes; k8s: a Kubernetes fleet scaled for the run.
Placement = Literal["auto", "local", "fleet", "k8s"]

#: How long spawned workers may take to start and register (imports on a busy machine).
SPAWN_TIMEOUT_S = 30.0
#: A spawned worker that gets no assignment for this long leaves by itself.
SPAWNED_IDLE_TIMEOUT_S = 60.0
#: How long finished local workers get to exit by themselves before they are terminated.
EXIT_TIMEOUT_S = 10.0


@dataclass
class Workers:
    """The workers of one run, and the local processes to clean up after it."""

    ids: list[str]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    # Called once the run is over (e.g. scaling a Kubernetes fleet back).
    after_run: Callable[[], None] | None = None

    def exited(self, worker_id: str) -> bool:
        process = self.processes.get(worker_id)
        return process is not None and process.poll() is not None

    def last_log_line(self, worker_id: str) -> str:
        """The last line a local worker wrote (its error, when it died)."""
        path = self.logs.get(worker_id)
        return last_log_line(path) if path is not None else "no log (a fleet worker)"

    def release(self) -> None:
        """Let local workers exit (they leave after their run); terminate those that do not; give a
        Kubernetes fleet back its replica count."""
        try:
            stop_workers(self.processes.values(), exit_grace_s=EXIT_TIMEOUT_S)
        finally:
            if self.after_run is not None:
                self.after_run()


def place_workers(
    client: redis.Redis,
    redis_url: str,
    count: int,
    *,
    run_id: str,
    placement: Placement,
    log_dir: Path,
    exit_with_parent: bool = False,
    kubernetes: KubernetesFleet | None = None,
) -> Workers:
    """`count` workers for the run: from the fleet when it has any idle worker (`auto`), else spawned
    (`exit_with_parent`: spawned workers leave when this process ends, for a private Redis); with
    `k8s`, from the Kubernetes fleet `kubernetes` (its Deployment scaled up, and back on `release`)."""
    if placement == "k8s":
        from .k8s_placement import KubernetesFleet, place_kubernetes_workers

        placed = place_kubernetes_workers(client, count, kubernetes or KubernetesFleet.from_environment())
        return Workers(ids=placed.ids, after_run=placed.restore)
    if placement != "local":
        idle = idle_fleet_workers(client)
        if idle and len(idle) >= count:
            return Workers(ids=idle[:count])
        if placement == "fleet" or idle:
            raise RunError(
                f"the fleet at {wire.redacted(redis_url)} has {len(idle)} idle worker(s) but the run needs "
                f"{count}; start more with `meshload worker --redis URL` or ask for --workers {len(idle) or 1}"
            )
    check_local_worker_count(count)  # before a single process is started
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


def spawn_local_workers(
    client: redis.Redis, redis_url: str, count: int, *, run_id: str, log_dir: Path, exit_with_parent: bool = False
) -> Workers:
    """Start `count` one-run worker processes and wait until each has registered."""
    workers = Workers(ids=[f"{run_id}-w{index}" for index in range(count)])
    try:
        for worker_id in workers.ids:
            workers.logs[worker_id] = log_dir / f"{worker_id}.log"
            workers.processes[worker_id] = spawn_worker(
                redis_url,
                worker_id,
                workers.logs[worker_id],
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
                raise RunError(f"local worker {worker_id} exited at start: {workers.last_log_line(worker_id)}")
            if client.exists(wire.worker_alive_key(worker_id)):
                waiting.discard(worker_id)
        if not waiting:
            return
        if time.monotonic() > deadline:
            first = min(waiting)
            raise RunError(
                f"{len(waiting)} local worker(s) did not register within {SPAWN_TIMEOUT_S:g}s "
                f"({first}: {workers.last_log_line(first)}); is the machine overloaded?"
            )
        time.sleep(0.05)
