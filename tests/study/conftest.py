"""Study test helpers: run results built from real HDR histograms filled with sampled latencies."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from meshload.results.histogram import LatencyHistogram
from meshload.results.run_result import ComponentUsage, MeshUsage, RunResult
from meshload.scenarios.plan import OpenLoop, Plan, Target

MakeRun = Callable[..., RunResult]


@pytest.fixture
def make_run() -> MakeRun:
    """A factory of RunResults whose corrected latencies are `count` lognormal samples (median
    `median_ms`) plus `shift_ms`, with `errors` transport errors and the given proxy CPU."""

    def build(
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
    ) -> RunResult:
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
        return RunResult(
            run_id=run_id or f"run-{seed}",
            plan=plan,
            started_unix_ms=1_700_000_000_000 + seed,
            ended_unix_ms=1_700_000_000_000 + seed + int(measured_s * 1000),
            measured_s=measured_s,
            corrected=corrected,
            uncorrected=corrected.copy(),
            lag=LatencyHistogram(),
            sent=count + errors,
            completed=count,
            status_codes={"200": count},
            errors={"timeout": errors} if errors else {},
            mesh=mesh,
        )

    return build
