"""CPU and resident memory of groups of local processes, sampled with psutil while a run is measured.

The caller says which pids belong to which group ("sidecar", "ingress", "app") at each tick, so a
proxy replaced by a reload is followed. CPU over the window is the CPU time the processes used divided
by the window's length (not an average of per-tick rates), so a short window is still exact up to one
tick at the edges: a process first seen mid-window counts from that sighting, and one that exits
loses its last partial tick.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

from ...results.run_result import ComponentUsage

BYTES_PER_MB = 1024 * 1024


@dataclass
class _Group:
    cpu_s: float = 0.0  # CPU time used inside the window, all processes
    peak_cores: float = 0.0
    mem_samples_mb: list[float] = field(default_factory=list)
    max_count: int = 0


class ProcessSampler:
    """Samples every `interval_s` on a background thread between `start()` and `stop()`."""

    def __init__(self, list_pids: Callable[[], dict[str, list[int]]], interval_s: float = 1.0) -> None:
        self._list_pids = list_pids
        self._interval_s = interval_s
        self._groups: dict[str, _Group] = {}
        self._last_cpu_s: dict[tuple[int, float], float] = {}  # (pid, create_time) -> CPU seconds
        self._processes: dict[int, psutil.Process] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started_s = 0.0
        self._last_tick_s = 0.0
        self.window_s = 0.0

    def start(self) -> ProcessSampler:
        self._started_s = self._last_tick_s = time.monotonic()
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="mesh-resource-sampler", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._sample()

    def _process(self, pid: int) -> psutil.Process:
        process = self._processes.get(pid)
        if process is None or not process.is_running():
            process = psutil.Process(pid)
            self._processes[pid] = process
        return process

    def _sample(self) -> None:
        now_s = time.monotonic()
        tick_s = max(now_s - self._last_tick_s, 1e-9)
        self._last_tick_s = now_s
        for kind, pids in self._list_pids().items():
            group = self._groups.setdefault(kind, _Group())
            used_s = 0.0
            mem_mb = 0.0
            seen = 0
            for pid in pids:
                try:
                    process = self._process(pid)
                    with process.oneshot():
                        times = process.cpu_times()
                        rss = process.memory_info().rss
                        key = (pid, process.create_time())
                except psutil.Error:
                    continue  # exited between listing and sampling
                cpu_s = times.user + times.system
                previous = self._last_cpu_s.get(key)
                if previous is not None:
                    used_s += max(cpu_s - previous, 0.0)
                self._last_cpu_s[key] = cpu_s
                mem_mb += rss / BYTES_PER_MB
                seen += 1
            group.cpu_s += used_s
            group.peak_cores = max(group.peak_cores, used_s / tick_s)
            group.mem_samples_mb.append(mem_mb)
            group.max_count = max(group.max_count, seen)

    def stop(self) -> dict[str, ComponentUsage]:
        """Stop and summarise each group over the window."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        self.window_s = max(time.monotonic() - self._started_s, 1e-9)
        usage = {}
        for kind, group in self._groups.items():
            samples = group.mem_samples_mb or [0.0]
            usage[kind] = ComponentUsage(
                count=group.max_count,
                cpu_mcores=1000.0 * group.cpu_s / self.window_s,
                mem_mb=sum(samples) / len(samples),
                cpu_mcores_max=1000.0 * group.peak_cores,
                mem_mb_max=max(samples),
            )
        return usage
