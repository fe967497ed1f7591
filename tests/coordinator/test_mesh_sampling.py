"""The mesh sampled one window per minute over the measured part: a long run gets its mesh per minute,
a short one exactly one window, and the run's figures are the windows combined."""

from __future__ import annotations

from typing import cast

import pytest

from meshload.coordinator import mesh_sampling
from meshload.coordinator.mesh.base import MeshAdapter
from meshload.coordinator.mesh_sampling import MeshSampling
from meshload.results.run_result import ComponentUsage, MeshUsage


class GrowingMesh:
    """A mesh whose sidecar memory grows by 5 MB at every new window."""

    def __init__(self) -> None:
        self.windows = 0

    def start_sampling(self, interval_s: float = 1.0):
        self.windows += 1
        mem = 100.0 + 5.0 * self.windows

        class Sampling:
            def stop(self) -> MeshUsage:
                return MeshUsage(mesh="fake", sidecar=ComponentUsage(count=1, cpu_mcores=10.0, mem_mb=mem))

        return Sampling()


def test_one_window_per_minute_then_combined(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mesh_sampling, "WINDOW_S", 60.0)
    mesh = GrowingMesh()
    sampling = MeshSampling(cast(MeshAdapter, mesh), run_start_s=0.0, measured_start_s=10.0, measured_end_s=610.0)
    for now in range(700):
        sampling.tick(float(now))
    sampling.stop()
    assert mesh.windows == 10
    assert [m.offset_s for m in sampling.minutes] == [10.0 + 60.0 * i for i in range(10)]
    assert [m.mem_mb["sidecar"] for m in sampling.minutes] == [100.0 + 5.0 * i for i in range(1, 11)]
    usage = sampling.usage
    assert usage is not None and usage.sidecar.mem_mb == pytest.approx(sum(100.0 + 5.0 * i for i in range(1, 11)) / 10)


def test_a_short_run_is_one_window_and_no_mesh_is_none() -> None:
    mesh = GrowingMesh()
    sampling = MeshSampling(cast(MeshAdapter, mesh), run_start_s=0.0, measured_start_s=1.0, measured_end_s=3.0)
    for now in (0.0, 1.0, 2.0, 3.0, 4.0):
        sampling.tick(now)
    sampling.stop()
    assert mesh.windows == 1 and len(sampling.minutes) == 1
    assert sampling.usage is not None and sampling.usage.sidecar.mem_mb == 105.0
    nothing = MeshSampling(None, run_start_s=0.0, measured_start_s=0.0, measured_end_s=1.0)
    nothing.tick(0.5)
    nothing.stop()
    assert nothing.usage is None and nothing.minutes == []


class LateReadingMesh:
    """A mesh whose sampler reads its figures later (as Prometheus does): `close_window` ends the
    window, `stop` reads; the test records when each happened."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def start_sampling(self, interval_s: float = 1.0):
        events = self.events
        index = len([e for e in events if e.startswith("start")])
        events.append(f"start {index}")

        class Sampling:
            def close_window(self) -> None:
                events.append(f"close {index}")

            def stop(self) -> MeshUsage:
                events.append(f"read {index}")
                return MeshUsage(mesh="late", sidecar=ComponentUsage(count=1, mem_mb=10.0 * (index + 1)))

        return Sampling()


def test_windows_read_later_are_read_only_once_the_run_is_collected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mesh_sampling, "WINDOW_S", 60.0)
    mesh = LateReadingMesh()
    sampling = MeshSampling(cast(MeshAdapter, mesh), run_start_s=0.0, measured_start_s=0.0, measured_end_s=150.0)
    for now in range(200):
        sampling.tick(float(now))
    assert not any(event.startswith("read") for event in mesh.events)  # nothing waits inside the run's loop
    assert mesh.events == ["start 0", "close 0", "start 1", "close 1", "start 2", "close 2"]
    sampling.stop()
    assert [e for e in mesh.events if e.startswith("read")] == ["read 0", "read 1", "read 2"]
    assert [m.mem_mb["sidecar"] for m in sampling.minutes] == [10.0, 20.0, 30.0]
    assert [m.offset_s for m in sampling.minutes] == [0.0, 60.0, 120.0]
