"""Trend lines over a run's minutes and the growing-memory rule, on made-up series whose answer is
known: a steady climb is flagged, flat noise, a single step and a climb too short or too small are not."""

from __future__ import annotations

import numpy as np
import pytest

from meshload.results.run_result import ComponentUsage, MeshMinute, MeshUsage, MinutePoint
from meshload.results.trends import (
    GROWTH_LIMIT,
    MIN_MINUTES,
    combine_usages,
    fit_trend,
    memory_trend,
    run_trends,
)

MINUTES = [float(m) for m in range(30)]


def test_least_squares_recovers_a_known_line() -> None:
    trend = fit_trend("y", MINUTES, [3.0 + 0.5 * x for x in MINUTES])
    assert trend is not None
    assert trend.slope_per_minute == pytest.approx(0.5)
    assert trend.start == pytest.approx(3.0) and trend.end == pytest.approx(3.0 + 0.5 * 29)
    assert trend.r2 == pytest.approx(1.0)
    assert fit_trend("y", [1.0], [2.0]) is None
    assert fit_trend("y", [1.0, 1.0], [2.0, 3.0]) is None


def test_a_steady_leak_is_flagged_and_flat_noise_is_not() -> None:
    rng = np.random.default_rng(7)
    leak = [100.0 + 1.0 * x + rng.normal(0, 1.0) for x in MINUTES]  # +29% over the run
    flat = [100.0 + rng.normal(0, 3.0) for _ in MINUTES]
    step = [100.0] * 15 + [100.0] * 14 + [130.0]  # one jump at the very end: not a climb
    small = [100.0 + 0.2 * x for x in MINUTES]  # +5.8%: below the limit
    short = [100.0 + 5.0 * x for x in range(MIN_MINUTES - 1)]
    assert memory_trend("leak", MINUTES, leak).flagged  # type: ignore[union-attr]
    assert not memory_trend("flat", MINUTES, flat).flagged  # type: ignore[union-attr]
    assert not memory_trend("step", MINUTES, step).flagged  # type: ignore[union-attr]
    small_trend = memory_trend("small", MINUTES, small)
    assert small_trend is not None and not small_trend.flagged and small_trend.growth_fraction < GROWTH_LIMIT
    assert not memory_trend("short", [float(x) for x in range(len(short))], short).flagged  # type: ignore[union-attr]


def test_run_trends_cover_latency_and_each_mesh_component() -> None:
    minutes = [
        MinutePoint(offset_s=60.0 * m, rate=100, sent_rate=100, completed=6000, errors=0, p50_ms=1, p99_ms=5, p999_ms=9)
        for m in range(10)
    ]
    mesh = [
        MeshMinute(offset_s=60.0 * m, cpu_mcores={"sidecar": 50.0}, mem_mb={"sidecar": 40.0 + 2.0 * m})
        for m in range(10)
    ]
    trends = {trend.series: trend for trend in run_trends(minutes, mesh)}
    assert set(trends) == {"p99 (ms)", "sidecar CPU (mcores)", "sidecar memory (MB)"}
    assert trends["sidecar memory (MB)"].flagged
    assert not trends["sidecar CPU (mcores)"].flagged and not trends["p99 (ms)"].flagged
    assert "GROWING" in trends["sidecar memory (MB)"].describe()


def test_windows_combine_by_length() -> None:
    def usage(cpu: float, mem: float, peak: float) -> MeshUsage:
        part = ComponentUsage(count=2, cpu_mcores=cpu, mem_mb=mem, cpu_mcores_max=peak, mem_mb_max=mem)
        replicas = {"ratings": {"ratings-1": int(cpu), "ratings-2": 1}}
        return MeshUsage(mesh="m", function="f", sidecar=part, topology="sidecar", replicas=replicas)

    combined = combine_usages([(usage(100.0, 10.0, 150.0), 60.0), (usage(200.0, 20.0, 250.0), 30.0)])
    assert combined is not None
    assert combined.sidecar.cpu_mcores == pytest.approx((100 * 60 + 200 * 30) / 90)
    assert combined.sidecar.mem_mb == pytest.approx((10 * 60 + 20 * 30) / 90)
    assert combined.sidecar.cpu_mcores_max == 250.0 and combined.sidecar.mem_mb_max == 20.0
    assert combined.sidecar.count == 2 and combined.mesh == "m" and combined.topology == "sidecar"
    assert combined.replicas == {"ratings": {"ratings-1": 300, "ratings-2": 2}}
    one = usage(1.0, 2.0, 3.0)
    assert combine_usages([(one, 5.0)]) is one
    assert combine_usages([]) is None


def test_the_whole_run_per_minute_reaches_the_reports_and_comes_back(finished_result, tmp_path) -> None:
    from meshload.results.outputs import load_run_result, write_run_outputs

    result = finished_result
    result.minutes = [
        MinutePoint(offset_s=60.0 * m, rate=100, sent_rate=100, completed=6000, errors=m, p50_ms=1, p99_ms=5, p999_ms=9)
        for m in range(8)
    ]
    result.mesh_minutes = [
        MeshMinute(offset_s=60.0 * m, cpu_mcores={"sidecar": 50.0}, mem_mb={"sidecar": 40.0 + 3.0 * m})
        for m in range(8)
    ]
    result.trends = run_trends(result.minutes, result.mesh_minutes)
    result.partial = True
    write_run_outputs(result, tmp_path)
    html = (tmp_path / "report.html").read_text()
    assert "PARTIAL REPORT" in html
    assert "Corrected latency per minute" in html and "Mesh memory per minute, with trend lines" in html
    assert "sidecar memory (MB)" in html and "GROWING (flagged)" in html
    assert "rises by more than 10% of its starting value" in html
    back = load_run_result(tmp_path)
    assert back.partial
    assert back.minutes == result.minutes
    assert back.mesh_minutes == result.mesh_minutes
    assert [(t.series, t.flagged) for t in back.trends] == [(t.series, t.flagged) for t in result.trends]
