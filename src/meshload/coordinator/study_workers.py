"""The study-long local workers: started once, serving every cell from the study's private Redis."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from ..errors import RunError
from .cpu_pinning import pin_process_tree
from .local_workers import cut_lifeline, spawn_worker, stop_workers

#: Scheduling priority of the study's workers (below 0: ahead of the testbed's processes).
WORKER_NICENESS = -5


class StudyWorkers:
    """Long-lived local workers serving every cell of a study from the study's private Redis.

    A worker spawned per cell would cost each cell its interpreter start (about 1.5 s on 2 busy
    cores); these start once, go back to idle after each run, and are stopped with the study. A
    worker that died is started again before the next cell.
    """

    #: How long workers may take to start, or to become idle again after a run.
    READY_TIMEOUT_S = 30.0
    #: A worker whose study stopped giving it work leaves by itself after this long.
    IDLE_TIMEOUT_S = 120.0

    def __init__(self, redis_url: str, count: int, log_dir: Path, *, cpus: tuple[int, ...] | None = None) -> None:
        self.redis_url = redis_url
        self.ids = [f"study-{os.getpid()}-w{index}" for index in range(count)]
        self.log_dir = log_dir
        self.cpus = cpus  # the generator's CPUs, when the study pins them
        self._processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        for worker_id in self.ids:
            self._spawn(worker_id)
        self.wait_until_idle()

    def _spawn(self, worker_id: str) -> None:
        previous = self._processes.get(worker_id)
        if previous is not None:
            cut_lifeline(previous)  # it exited; its lifeline goes with it
        # The generator shares the cores with the mesh it measures; when it is scheduled late, its
        # lag lands in every corrected latency. Ahead of the proxies, it sends on time.
        self._processes[worker_id] = spawn_worker(
            self.redis_url,
            worker_id,
            self.log_dir / f"{worker_id}.log",
            once=False,
            idle_timeout_s=self.IDLE_TIMEOUT_S,
            exit_with_parent=True,  # the study's Redis is private: workers leave with the study
            niceness=WORKER_NICENESS,
        )
        if self.cpus is not None:
            # Pinned as soon as it exists: the threads it starts later inherit the CPUs.
            pin_process_tree(self._processes[worker_id].pid, self.cpus)

    def pids(self) -> list[int]:
        return [process.pid for process in self._processes.values()]

    def wait_until_idle(self) -> None:
        """Block until every worker is registered and idle (restarting any that exited)."""
        import redis

        from .placement import idle_fleet_workers

        deadline = time.monotonic() + self.READY_TIMEOUT_S
        with redis.Redis.from_url(self.redis_url) as client:
            while True:
                for worker_id, process in list(self._processes.items()):
                    if process.poll() is not None:
                        self._spawn(worker_id)
                idle = set(idle_fleet_workers(client))
                if idle.issuperset(self.ids):
                    return
                if time.monotonic() > deadline:
                    raise RunError(
                        f"the study's workers were not ready within {self.READY_TIMEOUT_S:g}s; "
                        f"see the logs in {self.log_dir}"
                    )
                time.sleep(0.02)

    def stop(self) -> None:
        stop_workers(self._processes.values())
        self._processes.clear()
