"""Runs made by the real aggregator from interval records holding real HDR histograms of known
latency distributions (no traffic is sent): for tests of figures, intervals, history and trends."""

from __future__ import annotations

import numpy as np

from meshload.results.aggregate import RunAggregator
from meshload.results.histogram import LatencyHistogram
from meshload.results.interval import IntervalRecord
from meshload.results.run_result import ComponentUsage, MeshUsage, RunResult
from meshload.scenarios.plan import Plan

START_UNIX_MS = 1_780_000_000_000
DAY_MS = 86_400_000


def make_plan(name: str = "nightly", rate: float = 200.0, **labels: str) -> Plan:
    return Plan.model_validate(
        {
            "name": name,
            "targets": [{"url": "http://127.0.0.1:9/productpage"}],
            "load": {"kind": "open", "rate": rate},
            "duration_s": 10.0,
            "warmup_s": 1.0,
            "labels": labels,
        }
    )


def _encoded(values_us: np.ndarray) -> str:
    histogram = LatencyHistogram()
    histogram.record_batch(np.asarray(values_us, dtype=np.int64))
    return histogram.encode()


def synthetic_run(
    rng: np.random.Generator,
    *,
    run_id: str,
    plan: Plan | None = None,
    median_ms: float = 5.0,
    sigma: float = 0.5,
    seconds: int = 10,
    per_second: int = 200,
    failed_per_second: int = 0,
    started_unix_ms: int = START_UNIX_MS,
    proxy_cpu_mcores: float | None = None,
    second_effect_sd: float = 0.0,
) -> RunResult:
    """A run merged by the real aggregator from one warm-up second and `seconds` measured seconds of
    lognormal latencies (median `median_ms`); `second_effect_sd` scales each second's latencies by a
    lognormal factor, as a machine whose speed drifts during the run."""
    plan = plan or make_plan()
    aggregator = RunAggregator(plan, run_id)
    for seq in range(seconds + 1):
        factor = float(np.exp(rng.normal(0.0, second_effect_sd))) if second_effect_sd else 1.0
        values = rng.lognormal(np.log(median_ms * 1000.0 * factor), sigma, per_second)
        aggregator.add(
            IntervalRecord(
                worker_id="worker-0",
                seq=seq,
                run_id=run_id,
                offset_s=float(seq),
                duration_s=1.0,
                start_unix_ms=started_unix_ms - 1000 + seq * 1000,
                warmup=seq == 0,
                sent=per_second,
                completed=per_second,
                status_codes={"200": per_second - failed_per_second, "503": failed_per_second}
                if failed_per_second
                else {"200": per_second},
                latency_corrected=_encoded(values),
                latency_uncorrected=_encoded(values),
                schedule_lag=_encoded(np.full(per_second, 50)),
                final=seq == seconds,
            )
        )
    mesh = None
    if proxy_cpu_mcores is not None:
        mesh = MeshUsage(
            mesh="testbed-haproxy",
            function="sidecar",
            sidecar=ComponentUsage(count=4, cpu_mcores=proxy_cpu_mcores * 0.8, mem_mb=40.0),
            ingress_gateway=ComponentUsage(count=1, cpu_mcores=proxy_cpu_mcores * 0.2, mem_mb=10.0),
        )
    return aggregator.result(mesh=mesh, environment={"hostname": "loadgen", "cpu_cores": 2})
