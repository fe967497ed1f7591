"""The mesh's CPU and memory over a run's measured window, one sampler per minute (`WINDOW_S`), so a
long run shows them per minute (`RunResult.mesh_minutes`, with trend lines) as well as over the
whole window (`RunResult.mesh`, the windows combined by length). A run shorter than a minute is
sampled once, over exactly its measured window.

A sampler that reads its figures later (Prometheus: `close_window` ends the window now, `stop` waits
for the scrape after it and queries) is closed at each minute's end and read when the run is
collected, so that no query holds up the records and the heartbeats.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..results.run_result import MeshMinute, MeshUsage
from ..results.trends import combine_usages, mesh_minute
from .mesh.base import MeshAdapter, ResourceSampling

if TYPE_CHECKING:
    from .mesh.prometheus import PrometheusSource

#: Each sampler covers this long; then its figures are kept and a new one starts.
WINDOW_S = 60.0


class MeshSampling:
    """`tick(now)` on every turn of the coordinator's loop; `usage` and `minutes` once it stopped."""

    def __init__(
        self,
        mesh: MeshAdapter | None,
        *,
        run_start_s: float,
        measured_start_s: float,
        measured_end_s: float,
        prometheus: PrometheusSource | None = None,
    ) -> None:
        self._mesh = mesh
        self._prometheus = prometheus
        self._run_start_s = run_start_s
        self._measured_start_s = measured_start_s
        self._measured_end_s = measured_end_s
        self._sampler: ResourceSampling | None = None
        self._window_start_s = 0.0
        # Windows closed, to be read at `stop`: (sampler, start, length).
        self._to_read: list[tuple[ResourceSampling, float, float]] = []
        self._windows: list[tuple[MeshUsage, float]] = []
        self._done = False
        self.minutes: list[MeshMinute] = []

    def tick(self, now_s: float) -> None:
        if self._mesh is None or self._done:
            return
        if self._sampler is None and not self._to_read and not self._windows and now_s >= self._measured_start_s:
            self._start(now_s)
        elif self._sampler is not None and now_s >= self._measured_end_s:
            self._close_window(now_s)
        elif self._sampler is not None and now_s - self._window_start_s >= WINDOW_S:
            self._close_window(now_s)
            self._start(now_s)

    def stop(self, now_s: float | None = None) -> None:
        """Close the window still open and read every window not read yet."""
        if self._sampler is not None:
            self._close_window(time.monotonic() if now_s is None else now_s)
        to_read, self._to_read = self._to_read, []
        for sampler, start_s, length_s in to_read:
            self._keep(sampler.stop(), start_s, length_s)
        self.minutes.sort(key=lambda minute: minute.offset_s)
        self._done = True

    @property
    def usage(self) -> MeshUsage | None:
        return combine_usages(self._windows)

    def _start(self, now_s: float) -> None:
        assert self._mesh is not None
        mesh = self._mesh
        if self._prometheus is not None:
            from .mesh.prometheus import PrometheusMesh

            mesh = PrometheusMesh(mesh, self._prometheus)
        self._sampler = mesh.start_sampling()
        self._window_start_s = now_s

    def _close_window(self, now_s: float) -> None:
        sampler, self._sampler = self._sampler, None
        assert sampler is not None
        length_s = max(now_s - self._window_start_s, 1e-9)
        close_window = getattr(sampler, "close_window", None)
        if close_window is not None:
            close_window()  # read at `stop`, once the run is collected
            self._to_read.append((sampler, self._window_start_s, length_s))
        else:
            self._keep(sampler.stop(), self._window_start_s, length_s)

    def _keep(self, usage: MeshUsage, start_s: float, length_s: float) -> None:
        self._windows.append((usage, length_s))
        self.minutes.append(mesh_minute(start_s - self._run_start_s, usage))
