"""How much CPU the coordinator's collector and aggregator need for a large fleet.

Synthetic workers (one separate process, so their CPU is not counted) publish realistic interval
records to a run's Redis stream: WORKERS workers x one record per second, each record carrying three
HDR histograms with a few hundred distinct values (corrected, uncorrected, schedule lag), plus each
worker's heartbeat every half second. The coordinator side is the real loop of `coordinator.run_loop`
(`Coordinator.run`): `StreamCollector` (XREADGROUP, batched XACK) feeding `RunAggregator`, the
heartbeat check and live snapshot twice a second, and the final `result()`.

The figure: the coordinator's CPU time divided by the wall time, in percent of one core (target:
under 10% for 200 workers), and whether it kept up (every record merged within a second of the last
being published).

    python bench/bench_aggregation.py                 # 200 workers, 20 s, private redis-server
    python bench/bench_aggregation.py --workers 400 --seconds 30 --redis redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from redis.typing import EncodableT, FieldT

from bench_results import add_save_option, note_start, save_results
from meshload.coordinator import run_loop
from meshload.coordinator.live import LiveView
from meshload.coordinator.placement import Workers
from meshload.coordinator.redis_server import PrivateRedis
from meshload.coordinator.run import RunConnection, RunOptions
from meshload.coordinator.run_loop import Coordinator
from meshload.pipeline import collector as collector_module
from meshload.pipeline import wire
from meshload.results import aggregate as aggregate_module
from meshload.results.aggregate import RunAggregator
from meshload.results.histogram import RECORD_ENCODE_LEVEL, LatencyHistogram
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
    level = RECORD_ENCODE_LEVEL  # as workers encode them
    return corrected.encode(level), uncorrected.encode(level), lag.encode(level)


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


class Steps:
    """CPU time (this thread's) spent in each step of the coordinator, each call's own time only:
    a step called inside another is taken off the outer one, so the steps add up to their sum."""

    def __init__(self) -> None:
        self.cpu_ns: dict[str, int] = {}
        self.calls: dict[str, int] = {}
        self._inner_ns = [0]  # per open call: time spent in steps called from it

    def wrap(self, step: str, function: Callable[..., Any]) -> Callable[..., Any]:
        self.cpu_ns.setdefault(step, 0)
        self.calls.setdefault(step, 0)
        clock = time.thread_time_ns

        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._inner_ns.append(0)
            started = clock()
            try:
                return function(*args, **kwargs)
            finally:
                spent = clock() - started
                inner = self._inner_ns.pop()
                self._inner_ns[-1] += spent
                self.cpu_ns[step] += spent - inner
                self.calls[step] += 1

        return timed

    def patch(self, owner: Any, name: str, step: str) -> None:
        setattr(owner, name, self.wrap(step, getattr(owner, name)))


def instrument(steps: Steps, client: Any) -> None:
    """Time the coordinator's steps: the Redis round trips (client side: sending, waiting is not CPU,
    parsing the reply), decoding, merging, the percentile passes and the live view."""
    for command in ("xreadgroup", "xack", "xautoclaim"):
        steps.patch(client, command, "redis: read + ack records")
    for command in ("hgetall", "set"):
        steps.patch(client, command, "redis: heartbeats + own key")
    steps.patch(collector_module, "decode_record", "decode records (msgspec)")
    steps.patch(aggregate_module, "decode_counts", "decode histograms")
    steps.patch(RunAggregator, "add", "merge (counters, add counts)")
    steps.patch(LatencyHistogram, "values_at_percentiles", "percentile passes")
    steps.patch(RunAggregator, "snapshot", "live view (snapshot + update)")
    steps.patch(LiveView, "update", "live view (snapshot + update)")
    steps.patch(Coordinator, "_look_at_heartbeats", "heartbeat check")
    steps.patch(Coordinator, "_all_accounted_for", "loop: who is unfinished")
    steps.patch(RunAggregator, "result", "final result")
    steps.patch(run_loop.Coordinator, "run", "other (loop, collector, liveness)")


def collect(redis_url: str, workers: int, seconds: int, steps: Steps | None = None) -> dict[str, float]:
    """The coordinator side, the real loop of `coordinator.run_loop`; its CPU use and wall time."""
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
    coordinator = Coordinator(plan, options, RunConnection(RUN_ID, client, redis_url, keys), fleet, live)
    # The synthetic fleet accepts its shares at once (real workers answer their assignment).
    accepted = wire.encode(wire.Answer(accepted=True))
    client.hset(keys.answers, mapping=dict.fromkeys(fleet.ids, accepted))
    if steps is not None:
        instrument(steps, client)
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
    parser.add_argument("--steps", action="store_true", help="a second, instrumented run: CPU per step")
    add_save_option(parser)
    args = parser.parse_args()
    if args.save:
        note_start()

    figures = run_once(args)
    kept_up = report(args, figures)
    results: dict[str, Any] = {
        "workers": args.workers,
        "seconds": args.seconds,
        "records_expected": figures["expected"],
        "records_merged": figures["merged"],
        "records_lost": figures["lost"],
        "kept_up": kept_up,
        "core_percent": 100.0 * figures["cpu_s"] / figures["wall_s"],
    }
    if args.steps:
        steps = Steps()
        instrumented = run_once(args, steps)
        print(f"\ninstrumented run, CPU per step ({instrumented['cpu_s']:.2f} s in all, timers included):")
        report_steps(steps, instrumented["wall_s"])
        results["steps_core_percent"] = {
            step: 100 * cpu_ns / 1e9 / instrumented["wall_s"] for step, cpu_ns in steps.cpu_ns.items()
        }
    if args.save:
        save_results(f"aggregation-{args.workers}-workers", results)


def run_once(args: argparse.Namespace, steps: Steps | None = None) -> dict[str, float]:
    """One run: the synthetic fleet in a child process, the coordinator here."""
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
        figures = collect(redis_url, args.workers, args.seconds, steps)
        publisher.join(30)
    finally:
        if private is not None:
            private.stop()
    return figures


def report_steps(steps: Steps, wall_s: float) -> None:
    print(f"  {'step':<36}{'calls':>9}{'CPU s':>8}{'% core':>8}{'us/call':>9}")
    for step, cpu_ns in sorted(steps.cpu_ns.items(), key=lambda item: -item[1]):
        calls = steps.calls[step]
        per_call = cpu_ns / calls / 1000 if calls else 0.0
        print(f"  {step:<36}{calls:>9}{cpu_ns / 1e9:>8.2f}{100 * cpu_ns / 1e9 / wall_s:>8.2f}{per_call:>9.1f}")


def report(args: argparse.Namespace, figures: dict[str, float]) -> bool:
    """Print a run's figures; whether the coordinator kept up with the fleet, losing nothing."""
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
    return kept_up


if __name__ == "__main__":
    main()
