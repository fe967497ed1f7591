"""How much CPU the coordinator's collector and aggregator need for a large fleet.

Synthetic workers (one separate process, so their CPU is not counted) publish realistic interval
records to a run's Redis stream: WORKERS workers x one record per second, each record carrying three
HDR histograms with a few hundred distinct values (corrected, uncorrected, schedule lag), plus each
worker's heartbeat every half second. The coordinator side is the real loop of `coordinator.run`
(`_Coordinator.run`): `StreamCollector` (XREADGROUP, batched XACK) feeding `RunAggregator`, the
heartbeat check and live snapshot twice a second, and the final `result()`.

The figure: the coordinator's CPU time divided by the wall time, in percent of one core (target:
under 10% for 200 workers), and whether it kept up (every record merged within a second of the last
being published).

    python bench/bench_aggregation.py                 # 200 workers, 20 s, private redis-server
    python bench/bench_aggregation.py --workers 400 --seconds 30 --redis redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import multiprocessing
import time

import numpy as np
from redis.typing import EncodableT, FieldT

from meshload.coordinator.live import LiveView
from meshload.coordinator.placement import Workers
from meshload.coordinator.redis_server import PrivateRedis
from meshload.coordinator.run import RunConnection, RunOptions, _Coordinator
from meshload.pipeline import wire
from meshload.results.histogram import LatencyHistogram
from meshload.results.interval import IntervalRecord, encode_record
from meshload.scenarios.plan import OpenLoop, Plan, Target

RUN_ID = "bench-aggregation"
#: Distinct histogram shapes the synthetic workers cycle through (encoding is the slow part).
SHAPES = 32
REQUESTS_PER_RECORD = 500


def histogram_blobs(rng: np.random.Generator) -> tuple[str, str, str]:
    """Corrected, uncorrected and lag histograms of one realistic interval (a few hundred values)."""
    latency_us = rng.lognormal(mean=np.log(2_000), sigma=0.6, size=REQUESTS_PER_RECORD).astype(np.int64)
    corrected, uncorrected, lag = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    lag_us = rng.exponential(80, REQUESTS_PER_RECORD).astype(np.int64)
    corrected.record_batch(latency_us + lag_us)
    uncorrected.record_batch(latency_us)
    lag.record_batch(lag_us)
    return corrected.encode(), uncorrected.encode(), lag.encode()


def publish(redis_url: str, workers: int, seconds: int, start_at: float) -> None:
    """The synthetic fleet: every second, one record per worker and two heartbeats each."""
    rng = np.random.default_rng(7)
    shapes = [histogram_blobs(rng) for _ in range(SHAPES)]
    keys = wire.RunKeys(RUN_ID)
    client = wire.open_redis(redis_url)
    while time.time() < start_at:
        time.sleep(0.01)
    for second in range(seconds):
        pipe = client.pipeline(transaction=False)
        for index in range(workers):
            corrected, uncorrected, lag = shapes[(index + second) % SHAPES]
            record = IntervalRecord(
                worker_id=f"w{index:04d}",
                seq=second,
                run_id=RUN_ID,
                offset_s=float(second),
                duration_s=1.0,
                start_unix_ms=int(time.time() * 1000),
                sent=REQUESTS_PER_RECORD,
                completed=REQUESTS_PER_RECORD - 2,
                status_codes={"200": REQUESTS_PER_RECORD - 3, "503": 1},
                errors={"timeout": 1, "reset": 1},
                bytes_received=REQUESTS_PER_RECORD * 1_200,
                cpu_seconds=0.05,
                clock_offset_ms=0.3,
                latency_corrected=corrected,
                latency_uncorrected=uncorrected,
                schedule_lag=lag,
                final=second == seconds - 1,
            )
            pipe.xadd(
                keys.records, {wire.RECORD_FIELD: encode_record(record)}, maxlen=wire.STREAM_MAXLEN, approximate=True
            )
        pipe.execute()
        for half in range(2):
            beats: dict[FieldT, EncodableT] = {
                f"w{index:04d}": wire.encode(wire.RunBeat(beat=2 * second + half)) for index in range(workers)
            }
            client.hset(keys.beats, mapping=beats)
            next_tick = start_at + second + (half + 1) * 0.5
            time.sleep(max(next_tick - time.time(), 0))
    client.close()


def collect(redis_url: str, workers: int, seconds: int) -> dict[str, float]:
    """The coordinator side, the real loop of `coordinator.run`; its CPU use and wall time."""
    plan = Plan(
        targets=(Target(url="http://127.0.0.1:9/"),),
        load=OpenLoop(rate=workers * REQUESTS_PER_RECORD),
        duration_s=seconds,
    )
    keys = wire.RunKeys(RUN_ID)
    client = wire.open_redis(redis_url)
    fleet = Workers(ids=[f"w{index:04d}" for index in range(workers)])
    live = LiveView(workers_total=workers, run_id=RUN_ID, show=False)
    options = RunOptions(workers=workers, live=False, placement="fleet")  # simulated: not capped by CPUs
    coordinator = _Coordinator(plan, options, RunConnection(RUN_ID, client, redis_url, keys), fleet, live)
    started_wall = time.monotonic()
    started_cpu = time.process_time()
    result = coordinator.run()
    cpu_s = time.process_time() - started_cpu
    wall_s = time.monotonic() - started_wall
    client.delete(*keys.all(), *(wire.assignment_key(worker_id) for worker_id in fleet.ids))
    client.close()
    return {
        "merged": sum(worker.records for worker in result.workers),
        "expected": workers * seconds,
        "lost": len(coordinator.lost),
        "cpu_s": cpu_s,
        "wall_s": wall_s,
        "completed": result.completed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--redis", default=None, help="Redis URL (default: a private redis-server)")
    args = parser.parse_args()

    private = None
    redis_url = args.redis
    if redis_url is None:
        private = PrivateRedis()
        redis_url = private.start()
    try:
        start_at = time.time() + 3.0  # time for the publisher to build its histograms
        publisher = multiprocessing.get_context("spawn").Process(
            target=publish, args=(redis_url, args.workers, args.seconds, start_at)
        )
        publisher.start()
        while time.time() < start_at:
            time.sleep(0.01)
        figures = collect(redis_url, args.workers, args.seconds)
        publisher.join(30)
    finally:
        if private is not None:
            private.stop()
    kept_up = (
        figures["merged"] == figures["expected"] and figures["lost"] == 0 and figures["wall_s"] < args.seconds + 1.5
    )
    percent = 100.0 * figures["cpu_s"] / figures["wall_s"]
    print(
        f"{args.workers} workers x {args.seconds} s: {figures['merged']:.0f}/{figures['expected']:.0f} records "
        f"({figures['merged'] / figures['wall_s']:.0f}/s) merged in {figures['wall_s']:.1f} s wall"
    )
    print(
        f"coordinator collector+aggregator CPU: {figures['cpu_s']:.2f} s = {percent:.1f}% of one core "
        f"(target < 10%); kept up: {'yes' if kept_up else 'NO'}"
    )


if __name__ == "__main__":
    main()
