"""RunAggregator: exact merging, duplicates, warm-up, lost workers, the timeseries, the self-check."""

from __future__ import annotations

import numpy as np
import pytest

from meshload.results.aggregate import OPEN_SECONDS, RunAggregator
from meshload.results.histogram import LatencyHistogram
from meshload.results.validity import (
    CLOCK_OFFSET_LIMIT_MS,
    LAG_P99_LIMIT_MS,
    MISSED_FRACTION_LIMIT,
    WORKER_CPU_SATURATION,
)

from .conftest import RUN_ID, START_UNIX_MS, MakeRecord, histogram_of, make_plan

WORKERS = ("worker-0", "worker-1", "worker-2")


def _feed_run(aggregator: RunAggregator, make_record: MakeRecord, seconds: int = 5) -> None:
    """One warm-up second then measured seconds, from three workers with different loads."""
    for seq in range(seconds):
        for index, worker in enumerate(WORKERS):
            record = make_record(worker, seq, completed=50 * (index + 1), warmup=seq == 0, final=seq == seconds - 1)
            assert aggregator.add(record)


def test_merge_is_exact_and_warmup_is_excluded_but_reported(make_record: MakeRecord) -> None:
    aggregator = RunAggregator(make_plan(), RUN_ID)
    _feed_run(aggregator, make_record)

    result = aggregator.result()

    measured = [s for (w, seq), s in make_record.samples.items() if seq > 0]
    for kind, histogram in (("corrected", result.corrected), ("uncorrected", result.uncorrected), ("lag", result.lag)):
        expected = histogram_of(np.concatenate([s[kind] for s in measured]))
        assert np.array_equal(histogram.counts_array(), expected.counts_array()), kind
    assert result.completed == result.sent == 4 * (50 + 100 + 150)
    assert result.status_codes == {"200": 1200}
    assert result.warmup_completed == 300 and result.warmup_s == pytest.approx(1.0)
    assert result.measured_s == pytest.approx(4.0)
    assert result.started_unix_ms == START_UNIX_MS + 1000
    assert result.ended_unix_ms == START_UNIX_MS + 5000
    assert result.actual_rps == pytest.approx(300.0)
    assert result.valid and not result.degraded and result.validity == []
    assert [w.id for w in result.workers] == list(WORKERS)
    assert [w.requests for w in result.workers] == [200, 400, 600]
    assert all(w.records == 5 for w in result.workers)
    assert aggregator.finished_workers == frozenset(WORKERS)
    # Every second is in the timeseries, the warm-up one flagged; rates are all workers together.
    assert [p.offset_s for p in result.timeseries] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert [p.warmup for p in result.timeseries] == [True, False, False, False, False]
    assert all(p.rate == pytest.approx(300.0) for p in result.timeseries)
    # Each second's p99 is the p99 of that second's merged samples, never an average of workers' p99s.
    third = np.concatenate([make_record.samples[(w, 2)]["corrected"] for w in WORKERS])
    assert result.timeseries[2].p99_ms == histogram_of(third).value_at_percentile(99) / 1000.0


def test_duplicates_and_foreign_records_are_ignored(make_record: MakeRecord) -> None:
    aggregator = RunAggregator(make_plan(), RUN_ID)
    record = make_record("worker-0", 1, completed=80)

    assert aggregator.add(record) is True
    assert aggregator.add(record) is False
    assert aggregator.add(make_record("worker-0", 2, completed=5, run_id="another-run")) is False

    result = aggregator.result()
    assert result.completed == 80
    assert result.corrected.total_count == 80
    assert result.workers[0].records == 1
    assert aggregator.foreign_records == 1


def test_malformed_histogram_merges_nothing(make_record: MakeRecord) -> None:
    aggregator = RunAggregator(make_plan(), RUN_ID)
    good = make_record("worker-0", 1, completed=10)
    bad = make_record("worker-0", 2, completed=10, schedule_lag="HISTFAAAAC94nJNp")
    aggregator.add(good)

    with pytest.raises(ValueError):
        aggregator.add(bad)

    result = aggregator.result()
    assert result.completed == 10 and result.corrected.total_count == 10
    assert aggregator.add(make_record("worker-0", 2, completed=10))  # the seq was not burnt


def test_lost_worker_is_kept_and_the_run_is_degraded(make_record: MakeRecord) -> None:
    aggregator = RunAggregator(make_plan(), RUN_ID)
    aggregator.expect_workers(["worker-0", "worker-1", "worker-silent"])
    for seq in range(1, 5):
        aggregator.add(make_record("worker-0", seq))
        if seq < 3:
            aggregator.add(make_record("worker-1", seq))
    aggregator.mark_lost("worker-1")
    aggregator.mark_lost("worker-silent")

    result = aggregator.result()
    figures = aggregator.snapshot()

    by_id = {w.id: w for w in result.workers}
    assert by_id["worker-1"].lost and by_id["worker-1"].requests == 200
    assert by_id["worker-silent"].lost and by_id["worker-silent"].records == 0
    assert not by_id["worker-0"].lost
    assert result.completed == 600
    assert result.degraded and result.valid
    assert any("2 of 3 worker(s) lost" in reason for reason in result.validity)
    assert figures.workers_alive == 1 and figures.workers_lost == 2


def test_late_record_for_a_closed_second_is_merged_exactly(make_record: MakeRecord) -> None:
    aggregator = RunAggregator(make_plan(duration_s=8.0), RUN_ID)
    for seq in range(1, OPEN_SECONDS + 6):
        aggregator.add(make_record("worker-0", seq))
    late = make_record("worker-1", 1, completed=400)

    assert aggregator.add(late)
    result = aggregator.result()

    second = np.concatenate([make_record.samples[(w, 1)]["corrected"] for w in ("worker-0", "worker-1")])
    point = next(p for p in result.timeseries if p.offset_s == 1.0)
    assert point.rate == pytest.approx(500.0)
    assert point.p50_ms == histogram_of(second).value_at_percentile(50) / 1000.0
    assert point.p99_ms == histogram_of(second).value_at_percentile(99) / 1000.0


def test_short_last_interval_and_half_second_intervals_make_whole_seconds(make_record: MakeRecord) -> None:
    aggregator = RunAggregator(make_plan(warmup_s=0.0, duration_s=2.0), RUN_ID)
    aggregator.add(make_record("worker-0", 0, completed=50, offset_s=0.0, duration_s=0.5))
    aggregator.add(make_record("worker-0", 1, completed=50, offset_s=0.5, duration_s=0.5))
    aggregator.add(make_record("worker-0", 2, completed=30, offset_s=0.9999999, duration_s=0.3))

    points = aggregator.result().timeseries

    assert [p.offset_s for p in points] == [0.0, 1.0]
    assert points[0].rate == pytest.approx(100.0)
    assert points[1].rate == pytest.approx(100.0)  # 30 responses in the 0.3 s the second lasted


def test_snapshot_shows_live_figures(make_record: MakeRecord) -> None:
    aggregator = RunAggregator(make_plan(), RUN_ID)
    aggregator.add(make_record("worker-0", 0, warmup=True, completed=40))

    warming = aggregator.snapshot()
    assert warming.in_warmup and warming.completed == 40 and warming.p99_ms > 0

    _feed_rest = [make_record(w, seq, completed=100, errors={"timeout": 3}) for seq in (1, 2) for w in WORKERS[:2]]
    for record in _feed_rest:
        aggregator.add(record)
    figures = aggregator.snapshot()
    samples = make_record.samples
    measured = histogram_of(np.concatenate([samples[(w, s)]["corrected"] for w in WORKERS[:2] for s in (1, 2)]))

    assert not figures.in_warmup
    assert figures.elapsed_s == pytest.approx(3.0) and figures.total_s == pytest.approx(5.0)
    assert figures.rate == pytest.approx(200.0)
    assert figures.p99_ms == measured.value_at_percentile(99) / 1000.0
    assert figures.errors == 12 and figures.completed == 440
    assert figures.workers_alive == 2 and figures.workers_lost == 0


@pytest.mark.parametrize(
    ("fields", "phrase"),
    [
        ({"lag_scale_us": 20_000.0 * LAG_P99_LIMIT_MS}, "fell behind its schedule"),
        ({"missed": 50, "sent": 100}, "never sent"),
        ({"cpu_seconds": WORKER_CPU_SATURATION + 0.05}, "saturated their CPU"),
        ({"clock_offset_ms": -2 * CLOCK_OFFSET_LIMIT_MS}, "clock"),
        ({"clamped": 3}, "above the histogram's range"),
    ],
)
def test_generator_trouble_makes_the_run_invalid(make_record: MakeRecord, fields: dict, phrase: str) -> None:
    aggregator = RunAggregator(make_plan(), RUN_ID)
    for seq in range(1, 5):
        aggregator.add(make_record("worker-0", seq, **(fields if seq == 3 else {})))

    result = aggregator.result()

    assert not result.valid
    assert len(result.validity) == 1 and phrase in result.validity[0]
    assert MISSED_FRACTION_LIMIT < 0.5  # the "missed" case above is far over the limit


def test_a_run_with_too_few_seconds_is_invalid(make_record: MakeRecord) -> None:
    aggregator = RunAggregator(make_plan(duration_s=10.0), RUN_ID)
    aggregator.add(make_record("worker-0", 1))

    result = aggregator.result()

    assert not result.valid
    assert any("cover 1.0 s of the planned 10 s" in reason for reason in result.validity)


def test_empty_aggregate_is_invalid_not_a_crash() -> None:
    result = RunAggregator(make_plan(), RUN_ID).result()
    assert not result.valid and result.completed == 0 and result.timeseries == []
    assert isinstance(result.corrected, LatencyHistogram)


def test_warmup_cpu_does_not_count_and_hosts_come_from_the_environment(make_record: MakeRecord) -> None:
    aggregator = RunAggregator(make_plan(), RUN_ID)
    aggregator.add(make_record("worker-0", 0, warmup=True, cpu_seconds=WORKER_CPU_SATURATION + 0.1))
    for seq in range(1, 5):
        aggregator.add(make_record("worker-0", seq, cpu_seconds=0.25))

    result = aggregator.result(environment={"worker_hosts": {"worker-0": "node-a"}})

    assert result.valid
    assert result.workers[0].max_cpu_fraction == pytest.approx(0.25)
    assert result.workers[0].cpu_seconds == pytest.approx(WORKER_CPU_SATURATION + 0.1 + 1.0)
    assert result.workers[0].host == "node-a"


def test_memory_is_bounded_by_seconds_not_requests(make_record: MakeRecord) -> None:
    probe = make_record("probe", 0, completed=20)
    record_size = len(probe.latency_corrected) + len(probe.latency_uncorrected)
    aggregator = RunAggregator(make_plan(duration_s=20.0), RUN_ID, max_kept_record_bytes=10 * record_size)
    for seq in range(1, 21):
        aggregator.add(make_record("worker-0", seq, completed=20))

    dense_seconds = sum(1 for second in aggregator._seconds.values() if second.is_open)
    result = aggregator.result()

    assert dense_seconds <= OPEN_SECONDS + 1  # older seconds keep only their non-empty counters
    assert len(result.timeseries) == 20 and all(p.p99_ms > 0 for p in result.timeseries)
    assert 0 < len(result.records) < 20 and result.records_dropped == 20 - len(result.records)
    assert result.completed == 400  # the totals are complete whatever the interval log kept
    assert result.valid and result.degraded
    assert any("interval log holds only part" in reason for reason in result.validity)


def test_each_second_carries_its_own_schedule_lag_so_a_stall_is_placed_in_time(make_record: MakeRecord) -> None:
    aggregator = RunAggregator(make_plan(duration_s=8.0), RUN_ID)
    for seq in range(1, OPEN_SECONDS + 6):
        for worker in ("worker-0", "worker-1"):
            # Second 3 of worker-1 stalls: its sends leave about 40 ms late, and 90 of them count as late.
            stalled = worker == "worker-1" and seq == 3
            aggregator.add(
                make_record(worker, seq, lag_scale_us=40_000.0 if stalled else 200.0, late=90 if stalled else 1)
            )
    # A late record for a second already closed still adds to that second's lag exactly.
    aggregator.add(make_record("worker-2", 1, lag_scale_us=5_000.0, late=7))

    points = {p.offset_s: p for p in aggregator.result().timeseries}

    for second, point in points.items():
        workers = [w for w in ("worker-0", "worker-1", "worker-2") if (w, int(second)) in make_record.samples]
        lag = histogram_of(np.concatenate([make_record.samples[(w, int(second))]["lag"] for w in workers]))
        # Merged counts, never an average of the workers' percentiles.
        assert point.lag_p99_ms == lag.value_at_percentile(99) / 1000.0, second
        assert point.lag_max_ms == lag.max_us / 1000.0, second
    assert points[3.0].late == 91 and points[2.0].late == 2 and points[1.0].late == 9
    worst = max(points.values(), key=lambda p: p.lag_p99_ms)
    assert worst.offset_s == 3.0 and worst.lag_p99_ms > 50 * points[2.0].lag_p99_ms


def test_polling_for_near_instants_is_waiting_not_load(make_record: MakeRecord) -> None:
    # A worker at a high open-loop rate polls instead of sleeping (worker.engines.pacing): its process
    # uses a whole core, but only the part that was not polling counts toward saturation.
    aggregator = RunAggregator(make_plan(), RUN_ID)
    for seq in range(5):
        aggregator.add(make_record("worker-0", seq, cpu_seconds=1.0, spin_seconds=0.45))
    aggregator.add(make_record("worker-1", 0, cpu_seconds=0.98, spin_seconds=0.02))

    result = aggregator.result()

    polling, busy = result.workers
    assert polling.max_cpu_fraction == pytest.approx(0.55)
    assert polling.cpu_seconds == pytest.approx(5.0) and polling.spin_seconds == pytest.approx(2.25)
    assert busy.max_cpu_fraction == pytest.approx(0.96)
    assert any(reason.cause == "cpu-saturated" and "worker-1" in reason.message for reason in result.reasons)
    assert not any("worker-0" in reason.message for reason in result.reasons if reason.cause == "cpu-saturated")


def test_a_final_record_too_short_for_the_cpu_clock_does_not_read_as_saturation(make_record: MakeRecord) -> None:
    # Process CPU is counted in 10 ms ticks: a 21 ms final record with two of them is not 95 % busy.
    aggregator = RunAggregator(make_plan(), RUN_ID)
    for seq in range(4):
        aggregator.add(make_record("worker-0", seq, cpu_seconds=0.3))
    aggregator.add(make_record("worker-0", 4, duration_s=0.021, cpu_seconds=0.02, final=True))

    result = aggregator.result()

    assert result.workers[0].max_cpu_fraction == pytest.approx(0.3)
    assert not any(reason.cause == "cpu-saturated" for reason in result.reasons)
