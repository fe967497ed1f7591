"""Results test helpers: plans, and interval records whose histograms hold real sampled latencies."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from meshload.results.aggregate import RunAggregator
from meshload.results.histogram import LatencyHistogram
from meshload.results.interval import IntervalRecord
from meshload.results.run_result import ComponentUsage, MeshUsage, RunResult
from meshload.scenarios.plan import Plan

RUN_ID = "run-test"
START_UNIX_MS = 1_760_000_000_000


def make_plan(**overrides: object) -> Plan:
    """A small open-loop plan against loopback (no traffic is sent by these tests)."""
    fields: dict[str, object] = {
        "name": "results-test",
        "targets": [{"url": "http://127.0.0.1:9/productpage"}],
        "load": {"kind": "open", "rate": 300.0},
        "duration_s": 4.0,
        "warmup_s": 1.0,
        "labels": {"function": "retries", "load_level": "300", "repetition": "2"},
    }
    fields.update(overrides)
    return Plan.model_validate(fields)


def histogram_of(values_us: np.ndarray) -> LatencyHistogram:
    histogram = LatencyHistogram()
    histogram.record_batch(np.asarray(values_us, dtype=np.int64))
    return histogram


@pytest.fixture
def no_cyclic_collector() -> Iterator[None]:
    """Only reference counting frees objects (as in a long run that seldom gets a full collection)."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20260101)


class RecordFactory:
    """Interval records with `completed` lognormal latencies (median ~3 ms).

    Each record's raw samples stay in `samples[(worker, seq)]`, so tests can compare a merge with one
    histogram fed every sample."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.samples: dict[tuple[str, int], dict[str, np.ndarray]] = {}

    def __call__(
        self,
        worker_id: str,
        seq: int,
        *,
        completed: int = 100,
        warmup: bool = False,
        offset_s: float | None = None,
        duration_s: float = 1.0,
        lag_scale_us: float = 200.0,
        **fields: Any,
    ) -> IntervalRecord:
        rng = self.rng
        corrected = rng.lognormal(np.log(3000.0), 0.6, completed).astype(np.int64)
        uncorrected = np.maximum(corrected - rng.integers(0, 500, completed), 1)
        lag = rng.exponential(lag_scale_us, completed).astype(np.int64)
        self.samples[(worker_id, seq)] = {"corrected": corrected, "uncorrected": uncorrected, "lag": lag}
        offset = float(seq) if offset_s is None else offset_s
        values: dict[str, Any] = {
            "worker_id": worker_id,
            "seq": seq,
            "run_id": RUN_ID,
            "offset_s": offset,
            "duration_s": duration_s,
            "start_unix_ms": START_UNIX_MS + round(offset * 1000),
            "warmup": warmup,
            "sent": completed,
            "completed": completed,
            "status_codes": {"200": completed},
            "cpu_seconds": 0.05 * duration_s,
            "latency_corrected": histogram_of(corrected).encode(),
            "latency_uncorrected": histogram_of(uncorrected).encode(),
            "schedule_lag": histogram_of(lag).encode(),
        }
        values.update(fields)
        return IntervalRecord(**values)


#: The fixture's type, as tests annotate it.
MakeRecord = RecordFactory


@pytest.fixture
def make_record(rng: np.random.Generator) -> RecordFactory:
    """A factory of interval records (`RecordFactory`)."""
    return RecordFactory(rng)


@pytest.fixture
def finished_result(make_record: MakeRecord) -> RunResult:
    """A merged run of three workers (one warm-up second, four measured), with some failures and a
    measured mesh, as the coordinator would hand it to the outputs."""
    aggregator = RunAggregator(make_plan(), RUN_ID)
    for seq in range(5):
        for index, worker in enumerate(("worker-0", "worker 1,odd", "worker-2")):
            extra: dict[str, Any] = {}
            if seq == 2 and index == 0:
                extra = {"status_codes": {"200": 95, "503": 5}, "errors": {"reset": 2, "timeout": 1}}
            aggregator.add(
                make_record(
                    worker, seq, completed=100, warmup=seq == 0, final=seq == 4, clock_offset_ms=0.4 * index, **extra
                )
            )
    mesh = MeshUsage(
        mesh="istio",
        function="retries",
        profile={"attempts": "3", "per_try_timeout": "2s"},
        mtls_enabled=True,
        sidecar=ComponentUsage(count=4, cpu_mcores=182.6, mem_mb=96.4, cpu_mcores_max=240.0, mem_mb_max=101.0),
        ingress_gateway=ComponentUsage(count=1, cpu_mcores=75.2, mem_mb=41.0),
        control_plane=ComponentUsage(count=1, cpu_mcores=12.0, mem_mb=150.7),
        applications=ComponentUsage(count=6, cpu_mcores=310.0, mem_mb=420.0),
        proxy_version="1.22.3",
        mesh_version="1.22.3",
    )
    environment = {"hostname": "loadgen-1", "cpu_cores": 2, "memory_mb": 7936, "kubernetes_version": "v1.30.2"}
    return aggregator.result(mesh=mesh, environment=environment)
