"""Running the engine against test servers and merging what it recorded."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from meshload.results.histogram import LatencyHistogram
from meshload.results.interval import IntervalRecord
from meshload.scenarios.plan import Plan
from meshload.worker.engines.base import EngineOutcome
from meshload.worker.standalone import collect_records


@dataclass
class Measured:
    """Records of one run, merged (warm-up included unless asked otherwise)."""

    records: list[IntervalRecord]
    outcome: EngineOutcome
    corrected: LatencyHistogram = field(default_factory=LatencyHistogram)
    uncorrected: LatencyHistogram = field(default_factory=LatencyHistogram)
    lag: LatencyHistogram = field(default_factory=LatencyHistogram)
    sent: int = 0
    completed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    status_codes: dict[str, int] = field(default_factory=dict)
    bytes_received: int = 0
    missed: int = 0


def measure(plan: Plan, *, interval_s: float = 1.0) -> Measured:
    records, outcomes = collect_records(plan, workers=1, interval_s=interval_s)
    merged = Measured(records, outcomes[0])
    for record in records:
        merged.corrected.decode_and_add(record.latency_corrected)
        merged.uncorrected.decode_and_add(record.latency_uncorrected)
        merged.lag.decode_and_add(record.schedule_lag)
        merged.sent += record.sent
        merged.completed += record.completed
        merged.bytes_received += record.bytes_received
        merged.missed += record.missed
        for kind, n in record.errors.items():
            merged.errors[kind] = merged.errors.get(kind, 0) + n
        for code, n in record.status_codes.items():
            merged.status_codes[code] = merged.status_codes.get(code, 0) + n
    return merged


def assert_stall_percentiles(run: Measured, stall_s: float, period_s: float) -> None:
    """Corrected p90, p95 and p99 equal the stall server's analytic truth x_q = S - (1 - q)·P within
    15% (the derivation is in tests/worker/test_open_loop.py)."""
    for percentile in (90, 95, 99):
        expected_ms = (stall_s - (1 - percentile / 100) * period_s) * 1000
        measured_ms = run.corrected.value_at_percentile(percentile) / 1000
        assert measured_ms == pytest.approx(expected_ms, rel=0.15), f"p{percentile}"


def open_plan(url: str | list[str], rate: float, duration_s: float, **options: object) -> Plan:
    urls = [url] if isinstance(url, str) else url
    return Plan(
        targets=[{"url": u} for u in urls],
        load={"kind": "open", "rate": rate},
        duration_s=duration_s,
        **options,
    )


def closed_plan(url: str, concurrency: int, duration_s: float, **options: object) -> Plan:
    load = {"kind": "closed", "concurrency": concurrency}
    if "think_time_s" in options:
        load["think_time_s"] = options.pop("think_time_s")
    return Plan(targets=[{"url": url}], load=load, duration_s=duration_s, **options)
