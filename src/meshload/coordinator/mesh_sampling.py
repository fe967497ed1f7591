"""The mesh's CPU and memory over a run's measured window, one sampler per minute (`WINDOW_S`), so a
long run shows them per minute (`RunResult.mesh_minutes`, with trend lines) as well as over the
whole window (`RunResult.mesh`, the windows combined by length). A run shorter than a minute is
sampled once, over exactly its measured window."""

from __future__ import annotations

import time

from ..results.run_result import MeshMinute, MeshUsage
from ..results.trends import combine_usages, mesh_minute
from .mesh.base import MeshAdapter, ResourceSampling

#: Each sampler covers this long; then its figures are kept and a new one starts.
WINDOW_S = 60.0


class MeshSampling:
    """`tick(now)` on every turn of the coordinator's loop; `usage` and `minutes` once it stopped."""

    def __init__(self, mesh: MeshAdapter | None, *, run_start_s: float, measured_start_s: float, measured_end_s: float):
        self._mesh = mesh
        self._run_start_s = run_start_s
        self._measured_start_s = measured_start_s
        self._measured_end_s = measured_end_s
        self._sampler: ResourceSampling | None = None
        self._window_start_s = 0.0
        self._windows: list[tuple[MeshUsage, float]] = []
        self._done = False
        self.minutes: list[MeshMinute] = []

    def tick(self, now_s: float) -> None:
        if self._mesh is None or self._done:
            return
        if self._sampler is None and now_s >= self._measured_start_s:
            self._start(now_s)
        elif self._sampler is not None and now_s >= self._measured_end_s:
            self.stop(now_s)
        elif self._sampler is not None and now_s - self._window_start_s >= WINDOW_S:
            self._close_window(now_s)
            self._start(now_s)

    def stop(self, now_s: float | None = None) -> None:
        if self._sampler is not None:
            self._close_window(time.monotonic() if now_s is None else now_s)
        self._done = True

    @property
    def usage(self) -> MeshUsage | None:
        return combine_usages(self._windows)

    def _start(self, now_s: float) -> None:
        assert self._mesh is not None
        self._sampler = self._mesh.start_sampling()
        self._window_start_s = now_s

    def _close_window(self, now_s: float) -> None:
        sampler, self._sampler = self._sampler, None
        assert sampler is not None
        usage = sampler.stop()
        self._windows.append((usage, max(now_s - self._window_start_s, 1e-9)))
        self.minutes.append(mesh_minute(self._window_start_s - self._run_start_s, usage))
