"""How much of a core the coordinator spends merging interval records.

The design budget: one record per second from each of 200 workers, merged using under 10% of a core.
This replays that load (records with realistic histograms: lognormal latencies, exponential lag) into
a `RunAggregator` as fast as it goes, and reports the process CPU time per record and per simulated
second, plus the cost of a live snapshot and of the final result, and the blob decoder beside hdrh's.

    python bench/bench_aggregation_merge.py [--workers 200] [--seconds 30] [--rate-per-worker 500]

Bounded: it builds `workers x seconds` records in memory and sends no traffic.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from hdrh.histogram import HdrHistogram

from meshload.results.aggregate import RunAggregator
from meshload.results.histogram import RECORD_ENCODE_LEVEL, LatencyHistogram, decode_counts
from meshload.results.interval import IntervalRecord
from meshload.scenarios.plan import Plan

BUDGET_CORE_FRACTION = 0.10
#: Distinct blobs to cycle through: enough variety, without building every histogram.
DISTINCT_BLOBS = 64


def _blobs(rng: np.random.Generator, per_second: int) -> list[tuple[str, str, str]]:
    blobs = []
    for _ in range(DISTINCT_BLOBS):
        corrected = rng.lognormal(np.log(3000.0), 0.8, per_second).astype(np.int64)
        uncorrected = np.maximum(corrected - rng.integers(0, 800, per_second), 1)
        lag = rng.exponential(150.0, per_second).astype(np.int64)
        encoded = []
        for values in (corrected, uncorrected, lag):
            histogram = LatencyHistogram()
            histogram.record_batch(values)
            encoded.append(histogram.encode(RECORD_ENCODE_LEVEL))  # as workers encode them
        blobs.append((encoded[0], encoded[1], encoded[2]))
    return blobs


def run(workers: int, seconds: int, rate_per_worker: int) -> dict[str, float]:
    rng = np.random.default_rng(7)
    blobs = _blobs(rng, rate_per_worker)
    plan = Plan(
        targets=[{"url": "http://127.0.0.1:9/"}],
        load={"kind": "open", "rate": float(workers * rate_per_worker)},
        duration_s=float(seconds),
    )
    records = [
        IntervalRecord(
            worker_id=f"worker-{w}",
            seq=s,
            run_id="bench",
            offset_s=float(s),
            duration_s=1.0,
            start_unix_ms=1_760_000_000_000 + 1000 * s,
            sent=rate_per_worker,
            completed=rate_per_worker,
            status_codes={"200": rate_per_worker},
            cpu_seconds=0.2,
            latency_corrected=blobs[(w + s) % DISTINCT_BLOBS][0],
            latency_uncorrected=blobs[(w + s) % DISTINCT_BLOBS][1],
            schedule_lag=blobs[(w + s) % DISTINCT_BLOBS][2],
        )
        for s in range(seconds)
        for w in range(workers)
    ]
    aggregator = RunAggregator(plan, "bench")
    cpu_start = time.process_time()
    for record in records:
        aggregator.add(record)
    merge_cpu_s = time.process_time() - cpu_start

    cpu_start = time.process_time()
    for _ in range(20):
        aggregator.snapshot()
    snapshot_ms = (time.process_time() - cpu_start) / 20 * 1000.0
    cpu_start = time.process_time()
    result = aggregator.result()
    result_ms = (time.process_time() - cpu_start) * 1000.0
    assert result.completed == workers * seconds * rate_per_worker

    blob = blobs[0][0]
    cpu_start = time.process_time()
    for _ in range(500):
        decode_counts(blob)
    ours_us = (time.process_time() - cpu_start) / 500 * 1e6
    cpu_start = time.process_time()
    for _ in range(500):
        HdrHistogram.decode(blob)
    hdrh_us = (time.process_time() - cpu_start) / 500 * 1e6

    per_record_us = merge_cpu_s / len(records) * 1e6
    core_fraction = merge_cpu_s / seconds  # CPU seconds spent per second of run
    return {
        "workers": workers,
        "seconds": seconds,
        "records": len(records),
        "merge_us_per_record": round(per_record_us, 1),
        "core_fraction_at_one_record_per_worker_second": round(core_fraction, 4),
        "budget_core_fraction": BUDGET_CORE_FRACTION,
        "within_budget": core_fraction < BUDGET_CORE_FRACTION,
        "snapshot_ms": round(snapshot_ms, 3),
        "result_ms": round(result_ms, 1),
        "decode_us_meshload": round(ours_us, 1),
        "decode_us_hdrh": round(hdrh_us, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--rate-per-worker", type=int, default=500, help="responses per worker per second")
    options = parser.parse_args()
    print(json.dumps(run(options.workers, options.seconds, options.rate_per_worker), indent=2))


if __name__ == "__main__":
    main()
