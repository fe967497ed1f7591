"""Study cells built from real HDR histograms filled with sampled latencies (no load is sent): one
run result per cell, made directly (tests.support.synthetic_runs makes runs through the aggregator)."""

from __future__ import annotations

import numpy as np

from meshload.results.cell_summary import CellSummary
from meshload.results.histogram import LatencyHistogram
from meshload.results.run_result import ComponentUsage, MeshUsage, RunResult, TimePoint
from meshload.results.study_result import StudyResult
from meshload.scenarios.plan import OpenLoop, Plan, Target
from meshload.scenarios.study_arms import FunctionSpec
from meshload.scenarios.study_plan import StudyPlan


def study_run(
    *,
    seed: int,
    median_ms: float = 2.0,
    shift_ms: float = 0.0,
    count: int = 4000,
    rate: float = 100.0,
    errors: int = 0,
    proxy_cpu_mcores: float | None = 50.0,
    proxy_mem_mb: float = 30.0,
    run_id: str = "",
    stall_second: int | None = None,
) -> RunResult:
    """A RunResult whose corrected latencies are `count` lognormal samples (median `median_ms`) plus
    `shift_ms`, with `errors` transport errors and the given proxy CPU, and a per-second timeseries
    (one warm-up second, then the measured ones) whose schedule lag is 0.05 ms, except in
    `stall_second` (counted from the first measured one): 300 ms."""
    rng = np.random.default_rng(seed)
    latencies_ms = rng.lognormal(np.log(median_ms), 0.35, count) + shift_ms
    corrected = LatencyHistogram()
    corrected.record_batch(np.round(latencies_ms * 1000).astype(np.int64))
    measured_s = count / rate
    plan = Plan(
        targets=(Target(url="http://127.0.0.1:9/productpage"),), load=OpenLoop(rate=rate), duration_s=measured_s
    )
    mesh = None
    if proxy_cpu_mcores is not None:
        mesh = MeshUsage(
            mesh="testbed-haproxy",
            sidecar=ComponentUsage(count=4, cpu_mcores=proxy_cpu_mcores * 0.8, mem_mb=proxy_mem_mb * 0.8),
            ingress_gateway=ComponentUsage(count=1, cpu_mcores=proxy_cpu_mcores * 0.2, mem_mb=proxy_mem_mb * 0.2),
        )
    seconds = max(round(measured_s), 1)
    timeseries = [
        TimePoint(
            offset_s=float(index),
            rate=rate,
            sent_rate=rate,
            errors=0,
            p50_ms=median_ms + shift_ms,
            p99_ms=2 * median_ms + shift_ms,
            warmup=index == 0,
            lag_p99_ms=300.0 if stall_second is not None and index == stall_second + 1 else 0.05,
            lag_max_ms=400.0 if stall_second is not None and index == stall_second + 1 else 0.08,
        )
        for index in range(seconds + 1)
    ]
    return RunResult(
        run_id=run_id or f"run-{seed}",
        plan=plan,
        started_unix_ms=1_700_000_000_000 + seed * 10_000,  # cells 10 s apart, in run order
        ended_unix_ms=1_700_000_000_000 + seed * 10_000 + int(measured_s * 1000),
        measured_s=measured_s,
        corrected=corrected,
        uncorrected=corrected.copy(),
        lag=LatencyHistogram(),
        sent=count + errors,
        completed=count,
        status_codes={"200": count},
        errors={"timeout": errors} if errors else {},
        mesh=mesh,
        timeseries=timeseries,
    )


#: Added median latency per function, ms: the sidecar adds 1 ms, mTLS 0.5 ms more, retries nothing.
SHIFTS_MS = {"none": 0.0, "sidecar": 1.0, "mtls": 1.5, "retries": 1.0}
PROXY_CPU = {"none": None, "sidecar": 40.0, "mtls": 60.0, "retries": 41.0}


#: The cell (by run order) whose generator stalls for a second (see `synthetic_study`).
STALLED_CELL = 21


def synthetic_study() -> StudyResult:
    """A finished study of four functions at two load levels, three repetitions, built from
    synthetic runs with the `SHIFTS_MS` and `PROXY_CPU` above."""
    plan = StudyPlan(
        name="unit-study",
        load_levels=(50.0, 100.0),
        repetitions=3,
        duration_s=4.0,
        functions=tuple(FunctionSpec(name=name) for name in SHIFTS_MS),
        seed=2,
    )
    result = StudyResult.start(
        plan, environment={"cpu_cores": 2, "load_average_before": [0.1, 0.2, 0.3], "versions": {"meshload": "0.1.0"}}
    )
    for cell in plan.cells():
        run = study_run(
            seed=cell.order,
            shift_ms=SHIFTS_MS[cell.function.name],
            rate=cell.rate,
            count=int(cell.rate * 20),
            proxy_cpu_mcores=PROXY_CPU[cell.function.name],
            # One stall, in a cell of the last block: second 3 of its measured part.
            stall_second=3 if cell.order == STALLED_CELL else None,
        )
        result.cells.append(
            CellSummary.from_run(
                run,
                function=cell.function.name,
                rate=cell.rate,
                repetition=cell.repetition,
                order=cell.order,
                run_dir=f"runs/{cell.slug}",
            )
        )
    result.finish(environment_after=[0.5, 0.4, 0.3])
    return result
