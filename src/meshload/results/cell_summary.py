"""One cell of a study as the statistics and reports see it (`CellSummary`): the compared metrics of
its run (latency percentiles, error rate, proxy CPU and memory), its schedule lag second by second,
and its corrected latency histogram.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict

from .aggregate import failed_requests
from .histogram import LatencyHistogram
from .run_result import RunResult

#: Percentiles compared, with the metric names they get.
COMPARED_PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50_ms", 50.0),
    ("p90_ms", 90.0),
    ("p99_ms", 99.0),
    ("p99.9_ms", 99.9),
)


@dataclass(frozen=True)
class Metric:
    """One compared quantity: its key in reports, a label for people, and its unit."""

    key: str
    label: str
    unit: str


METRICS: tuple[Metric, ...] = (
    Metric("p50_ms", "p50 latency", "ms"),
    Metric("p90_ms", "p90 latency", "ms"),
    Metric("p99_ms", "p99 latency", "ms"),
    Metric("p99.9_ms", "p99.9 latency", "ms"),
    Metric("error_rate_pct", "error rate", "%"),
    Metric("proxy_cpu_mcores_per_krps", "proxy CPU per 1,000 rps", "mcores"),
    Metric("proxy_mem_mb", "proxy memory", "MB"),
)
METRIC_BY_KEY: dict[str, Metric] = {metric.key: metric for metric in METRICS}


# -- one run's figures --------------------------------------------------------------------------


def run_metrics(result: RunResult) -> dict[str, float | None]:
    """The compared metrics of one run (None where the run has no such figure, e.g. no mesh sampler)."""
    percentiles = result.corrected.values_at_percentiles([p for _, p in COMPARED_PERCENTILES])
    metrics: dict[str, float | None] = {key: percentiles[p] / 1000.0 for key, p in COMPARED_PERCENTILES}
    attempted = result.completed + result.error_count
    metrics["error_rate_pct"] = (
        100.0 * failed_requests(result.status_codes, result.errors) / attempted if attempted else None
    )
    metrics["proxy_cpu_mcores_per_krps"] = None
    metrics["proxy_mem_mb"] = None
    if result.mesh is not None:
        # The proxies are the sidecars and the ingress gateway: everything the mesh puts on the path.
        cpu_mcores = result.mesh.sidecar.cpu_mcores + result.mesh.ingress_gateway.cpu_mcores
        metrics["proxy_mem_mb"] = result.mesh.sidecar.mem_mb + result.mesh.ingress_gateway.mem_mb
        if result.actual_rps > 0:
            metrics["proxy_cpu_mcores_per_krps"] = cpu_mcores / (result.actual_rps / 1000.0)
    return metrics


class LagSecond(TypedDict):
    """One second of a cell's schedule lag, placed in wall-clock time."""

    unix_ms: int  # the second's start
    lag_p99_ms: float
    lag_max_ms: float
    late: int
    warmup: bool


def lag_seconds(result: RunResult) -> list[LagSecond]:
    """Each second of a run with its schedule lag, at its wall-clock start: the measured part starts
    at `started_unix_ms`, and the seconds before it (the warm-up) are counted back from there."""
    measured = [point.offset_s for point in result.timeseries if not point.warmup]
    if not measured or not result.started_unix_ms:
        return []
    first_measured_s = min(measured)
    return [
        LagSecond(
            unix_ms=result.started_unix_ms + round((point.offset_s - first_measured_s) * 1000.0),
            lag_p99_ms=point.lag_p99_ms,
            lag_max_ms=point.lag_max_ms,
            late=point.late,
            warmup=point.warmup,
        )
        for point in result.timeseries
    ]


@dataclass
class CellSummary:
    """One cell of a study (function x load level x repetition) as the statistics and reports see it."""

    function: str
    rate: float  # offered load, requests per second
    repetition: int  # 1-based
    order: int  # position in the study's run order, 0-based
    run_id: str
    run_dir: str = ""  # relative to the study folder
    metrics: dict[str, float | None] = field(default_factory=dict)
    actual_rps: float = 0.0
    completed: int = 0
    valid: bool = True
    validity: list[str] = field(default_factory=list)
    histogram: str = ""  # corrected latency, standard HdrHistogram base64
    started_unix_ms: int = 0
    # The generator's schedule lag in each second of the cell, warm-up included (`lag_seconds`), so
    # the study's report can place a stall in time across every cell.
    lag_seconds: list[LagSecond] = field(default_factory=list)
    topology: str = ""  # the testbed topology the cell ran in ("": the study names none)
    # Requests each replica answered over the measured part (`MeshUsage.replicas`), by service.
    replicas: dict[str, dict[str, int]] = field(default_factory=dict)
    # Why the function could not be put in force in the cell's topology: the cell did not run, and
    # is left out of every comparison ("" for a cell that ran).
    not_supported: str = ""

    @classmethod
    def from_run(
        cls,
        result: RunResult,
        *,
        function: str,
        rate: float,
        repetition: int,
        order: int,
        run_dir: str = "",
        topology: str = "",
    ) -> CellSummary:
        return cls(
            function=function,
            rate=rate,
            repetition=repetition,
            order=order,
            run_id=result.run_id,
            run_dir=run_dir,
            metrics=run_metrics(result),
            actual_rps=result.actual_rps,
            completed=result.completed,
            valid=result.valid,
            validity=list(result.validity),
            histogram=result.corrected.encode(),
            started_unix_ms=result.started_unix_ms,
            lag_seconds=lag_seconds(result),
            topology=topology,
            replicas=dict(result.mesh.replicas) if result.mesh is not None else {},
        )

    def latency(self) -> LatencyHistogram:
        return LatencyHistogram.decode(self.histogram) if self.histogram else LatencyHistogram()
