"""The parts of a `RunResult` made from what `RunAggregator` merged: the per-second and per-minute
timeseries, each worker's summary with where it ran, and copies of the per-name summaries."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from .minutes import MINUTE_PERCENTILES, MINUTE_S, Minute
from .run_result import MinutePoint, NameSummary, TimePoint, WorkerSummary
from .seconds import LAG_PERCENTILES, SECOND_PERCENTILES, SECOND_S, Second
from .worker_records import WorkerRecords


def worker_summaries(workers: Iterable[WorkerRecords], environment: dict[str, object] | None) -> list[WorkerSummary]:
    """Each worker's summary, sorted by id, with its host and node from the run's environment."""
    hosts = (environment or {}).get("worker_hosts")
    hosts = hosts if isinstance(hosts, dict) else {}
    nodes = (environment or {}).get("worker_nodes")
    nodes = nodes if isinstance(nodes, dict) else {}
    summaries = []
    for worker in sorted(workers, key=lambda w: w.summary.id):
        summary = dataclasses.replace(worker.summary)
        summary.host = str(hosts.get(summary.id, summary.host))
        summary.node = str(nodes.get(summary.id, summary.node))
        if worker.lag.total_count:
            summary.lag_p99_ms = worker.lag.value_at_percentile(99.0) / 1000.0
        summary.finished = worker.finished
        # Sequences start at 0 and have no holes unless a record never arrived (a Redis restart).
        summary.missing_records = worker.seqs.gaps
        summaries.append(summary)
    return summaries


def timeseries(seconds: dict[int, Second]) -> list[TimePoint]:
    """One point per second kept, in order."""
    points = []
    for index in sorted(seconds):
        second = seconds[index]
        span_s = second.end_s if second.end_s > 0 else SECOND_S
        p50_us, p99_us = (second.percentiles_us()[p] for p in SECOND_PERCENTILES)
        lag_p99_us, lag_max_us = (second.lag_percentiles_us()[p] for p in LAG_PERCENTILES)
        points.append(
            TimePoint(
                offset_s=index * SECOND_S,
                rate=second.completed / span_s,
                sent_rate=second.sent / span_s,
                errors=second.failed,
                p50_ms=p50_us / 1000.0,
                p99_ms=p99_us / 1000.0,
                warmup=second.warmup,
                lag_p99_ms=lag_p99_us / 1000.0,
                lag_max_ms=lag_max_us / 1000.0,
                late=second.late,
            )
        )
    return points


def minute_points(minutes: dict[int, Minute]) -> list[MinutePoint]:
    """One point per minute of the run, in order."""
    points = []
    for index in sorted(minutes):
        minute = minutes[index]
        span_s = minute.end_s if minute.end_s > 0 else MINUTE_S
        p50_us, p99_us, p999_us = (minute.percentiles_us()[p] for p in MINUTE_PERCENTILES)
        points.append(
            MinutePoint(
                offset_s=index * MINUTE_S,
                rate=minute.completed / span_s,
                sent_rate=minute.sent / span_s,
                completed=minute.completed,
                errors=minute.failed,
                p50_ms=p50_us / 1000.0,
                p99_ms=p99_us / 1000.0,
                p999_ms=p999_us / 1000.0,
                warmup=minute.warmup,
                late=minute.late,
            )
        )
    return points


def copy_name(summary: NameSummary) -> NameSummary:
    return dataclasses.replace(summary, corrected=summary.corrected.copy(), uncorrected=summary.uncorrected.copy())
