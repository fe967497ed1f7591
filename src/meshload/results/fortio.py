"""A run in Fortio's result shape (`periodic.RunnerResults` + `fhttp.HTTPRunnerResults`).

Meshery normalises every load generator's output to this shape and charts it, so a `fortio.json`
can be imported there. Fortio's conventions are kept exactly (reference/smp.md §5): durations in
the histogram are in **seconds**, `ActualDuration` is integer nanoseconds, `RequestedQPS` is a
string ("max" for a closed loop), `RetCodes` is keyed by status string with transport errors under
"-1" as Fortio counts them, and the percentile list is exactly 50, 75, 90, 99, 99.9 in that order
(mesheryctl reads it by position). A gRPC run has `RunType` "GRPC" and its `RetCodes` keyed by status
name ("OK", "UNAVAILABLE", ...).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import numpy as np

from ..scenarios.plan import ClosedLoop
from .histogram import LatencyHistogram
from .run_result import RunResult
from .smp import go_duration, rfc3339

FORTIO_PERCENTILES: tuple[float, ...] = (50.0, 75.0, 90.0, 99.0, 99.9)
#: Fortio's status key for a request that got no HTTP response (connect error, reset, timeout).
TRANSPORT_ERROR_CODE = "-1"
#: Data buckets per decade of latency: HDR's thousands of buckets coarsened for charts.
BUCKETS_PER_DECADE = 20
_US_PER_S = 1e6


def _meshload_version() -> str:
    try:
        return version("meshload")
    except PackageNotFoundError:
        return "dev"


def duration_histogram(histogram: LatencyHistogram) -> dict[str, object]:
    """Fortio's histogram object, in seconds, from a microsecond HDR histogram."""
    count = histogram.total_count
    values_us = histogram.values_at_percentiles(FORTIO_PERCENTILES)
    return {
        "Count": count,
        "Min": histogram.min_us / _US_PER_S,
        "Max": histogram.max_us / _US_PER_S,
        "Sum": histogram.sum_us() / _US_PER_S,
        "Avg": histogram.mean_us() / _US_PER_S,
        "StdDev": histogram.stddev_us() / _US_PER_S,
        "Data": _data_buckets(histogram),
        "Percentiles": [{"Percentile": p, "Value": values_us[p] / _US_PER_S} for p in FORTIO_PERCENTILES],
    }


def _data_buckets(histogram: LatencyHistogram) -> list[dict[str, float | int]]:
    """Non-empty buckets on a log scale; `Percent` is cumulative, as in Fortio."""
    buckets = histogram.buckets()
    if not buckets:
        return []
    table = np.asarray(buckets, dtype=np.float64)  # lowest_us, highest_us, count
    lowest, highest, counts = table[:, 0], table[:, 1], table[:, 2]
    groups = np.floor(np.log10(np.maximum(lowest, 1.0)) * BUCKETS_PER_DECADE).astype(np.int64)
    starts = np.flatnonzero(np.diff(groups, prepend=groups[0] - 1))
    ends = np.append(starts[1:], len(groups)) - 1
    group_counts = np.add.reduceat(counts, starts)
    cumulative = np.cumsum(group_counts)
    total = float(cumulative[-1])
    return [
        {
            "Start": lowest[first] / _US_PER_S,
            "End": (highest[last] + 1) / _US_PER_S,
            "Percent": 100.0 * float(done) / total,
            "Count": int(n),
        }
        for first, last, n, done in zip(starts, ends, group_counts, cumulative, strict=True)
    ]


def ret_codes(result: RunResult) -> dict[str, int]:
    """Status code -> count, with every transport error under Fortio's "-1"."""
    codes = {code: int(count) for code, count in sorted(result.status_codes.items())}
    if result.error_count:
        codes[TRANSPORT_ERROR_CODE] = codes.get(TRANSPORT_ERROR_CODE, 0) + result.error_count
    return codes


def fortio_document(result: RunResult) -> dict[str, object]:
    """The run as Fortio's JSON result (plus Meshery's "load-generator" key)."""
    plan = result.plan
    url = plan.targets[0].url
    sockets = plan.max_connections * max(len(result.workers), 1)
    if isinstance(plan.load, ClosedLoop):
        requested_qps = "max"
        threads = plan.load.concurrency
        if not plan.multiplexed:
            sockets = threads  # one connection per client
    else:
        requested_qps = f"{plan.load.rate:g}"
        threads = sockets
    return {
        "RunType": "GRPC" if plan.protocol == "grpc" else "HTTP",
        "Labels": f"{plan.name} -_- {url}",
        "StartTime": rfc3339(result.started_unix_ms),
        "RequestedQPS": requested_qps,
        "RequestedDuration": go_duration(plan.duration_s),
        "ActualQPS": result.actual_rps,
        "ActualDuration": round(result.measured_s * 1e9),
        "NumThreads": int(threads),
        "Version": f"meshload {_meshload_version()}",
        "Exactly": 0,
        "Jitter": False,
        "Uniform": False,
        "NoCatchUp": False,
        "RunID": 0,
        "ID": result.run_id,
        "URL": url,
        "SocketCount": int(sockets),
        "RetCodes": ret_codes(result),
        "DurationHistogram": duration_histogram(result.corrected),
        "ErrorsDurationHistogram": duration_histogram(LatencyHistogram()),
        "load-generator": "meshload",
    }
