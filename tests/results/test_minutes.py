"""The roll-up of a long run: seconds beyond the per-second window are dropped while every record
also feeds its minute, so the minutes cover the whole run exactly (counts and histograms, late and
out-of-order records included), and the cumulative histograms are untouched by the roll-up."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import msgspec
import numpy as np
import pytest

from meshload.results.aggregate import RunAggregator
from meshload.results.hlog import IntervalLogSpool, read_interval_log, write_interval_log
from meshload.results.worker_records import SeqSet

from .conftest import RUN_ID, START_UNIX_MS, MakeRecord, histogram_of, make_plan

WORKERS = ("w0", "w1")
SECONDS = 200  # three minutes and a bit, with a 30-second window


def test_minutes_are_exact_and_seconds_stay_within_the_window(make_record: MakeRecord) -> None:
    aggregator = RunAggregator(make_plan(), RUN_ID, per_second_window_s=30)
    late = []
    for seq in range(SECONDS):
        for index, worker in enumerate(WORKERS):
            record = make_record(worker, seq, completed=5 + index + seq % 7, warmup=seq < 2, final=seq == SECONDS - 1)
            if worker == "w1" and seq in (10, 70):
                late.append(record)  # arrives long after its second (and minute) went by
                continue
            assert aggregator.add(record)
    for record in late:
        assert aggregator.add(record)
    assert not aggregator.add(late[0])  # twice is once

    result = aggregator.result()
    # Per second: only the window; per minute: the whole run.
    assert [p.offset_s for p in result.timeseries] == [float(s) for s in range(SECONDS - 30, SECONDS)]
    assert [p.offset_s for p in result.minutes] == [0.0, 60.0, 120.0, 180.0]
    total = sum(s["corrected"].size for s in make_record.samples.values())
    assert sum(p.completed for p in result.minutes) == total == result.completed + result.warmup_completed
    for minute in result.minutes:
        first = int(minute.offset_s)
        samples = [
            make_record.samples[(w, seq)]["corrected"]
            for w in WORKERS
            for seq in range(first, min(first + 60, SECONDS))
        ]
        merged = histogram_of(np.concatenate(samples))
        assert minute.completed == merged.total_count
        assert minute.p50_ms == merged.value_at_percentile(50) / 1000.0
        assert minute.p99_ms == merged.value_at_percentile(99) / 1000.0
        assert minute.p999_ms == merged.value_at_percentile(99.9) / 1000.0
        assert minute.rate == pytest.approx(merged.total_count / min(60, SECONDS - first))
    assert result.minutes[0].warmup and not result.minutes[1].warmup
    # The cumulative histogram (measured part) is exact, roll-up or not.
    measured = [s["corrected"] for (w, seq), s in make_record.samples.items() if seq >= 2]
    assert np.array_equal(result.corrected.counts_array(), histogram_of(np.concatenate(measured)).counts_array())


def test_memory_holds_the_window_and_the_minutes_not_every_second(make_record: MakeRecord) -> None:
    aggregator = RunAggregator(make_plan(), RUN_ID, per_second_window_s=30)
    for seq in range(SECONDS):
        aggregator.add(make_record("w0", seq, completed=3))
    assert len(aggregator._seconds) == 30
    assert len(aggregator._minutes) == 4
    assert sum(minute.is_open for minute in aggregator._minutes.values()) <= 2
    # Seconds a minute old keep their figures only (no counters), and still show in the timeseries.
    aggregator = RunAggregator(make_plan(), RUN_ID, per_second_window_s=600)
    for seq in range(SECONDS):
        aggregator.add(make_record("w0", seq, completed=3))
    counters = [second.latency._sparse_index.size for index, second in sorted(aggregator._seconds.items())]
    assert all(size == 0 for size in counters[: SECONDS - 61]) and all(
        size > 0 for size in counters[-50:-4]
    )  # (the newest are dense yet)
    assert len(aggregator.result().timeseries) == SECONDS


def test_results_taken_during_a_long_run_leave_nothing_behind(
    make_record: MakeRecord, no_cyclic_collector: None, tmp_path: Path
) -> None:
    # A soak's coordinator takes a result at every checkpoint, and it seldom gets a full collection:
    # what a result copies (its histograms, ~200 KB of counters each) must go when the result goes.
    spool = IntervalLogSpool(tmp_path / "spool")  # as with --out: the interval log is not in memory
    aggregator = RunAggregator(make_plan(), RUN_ID, per_second_window_s=30, log_spool=spool)
    shapes = [make_record("w", seq, completed=50) for seq in range(8)]  # blobs reused: encoding is slow
    for seq in range(SECONDS):
        for index, worker in enumerate(WORKERS):
            shape = shapes[(2 * seq + index) % len(shapes)]
            start_ms = START_UNIX_MS + seq * 1000
            aggregator.add(
                msgspec.structs.replace(shape, worker_id=worker, seq=seq, offset_s=float(seq), start_unix_ms=start_ms)
            )
    aggregator.result()  # whatever a first result makes once
    checkpoints = 5
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for _ in range(checkpoints):
            assert aggregator.result().completed > 0
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        spool.close()

    assert grown < 20_000  # each result's copies were 600 KB


def test_seq_set_remembers_every_seq_in_little_memory() -> None:
    seqs = SeqSet()
    for seq in (0, 1, 3, 2, 7, 4, 5):
        assert seq not in seqs
        seqs.add(seq)
        assert seq in seqs
    assert seqs.below == 6 and seqs.above == {7}
    assert 6 not in seqs and 8 not in seqs
    assert seqs.gaps == 1  # 6


def test_a_spooled_interval_log_holds_the_same_intervals(make_record: MakeRecord, tmp_path) -> None:
    spool = IntervalLogSpool(tmp_path / "spool")
    in_memory = RunAggregator(make_plan(), RUN_ID)
    on_disk = RunAggregator(make_plan(), RUN_ID, log_spool=spool)
    for seq in (0, 2, 1, 3):  # one late record
        for worker in WORKERS:
            record = make_record(worker, seq)
            in_memory.add(record)
            on_disk.add(record)
    kept, spooled = in_memory.result(), on_disk.result()
    assert spooled.records == [] and spooled.log_spool is spool
    write_interval_log(kept.records, tmp_path / "kept.hlog")
    spool.write_log(tmp_path / "spooled.hlog")
    spool.close()
    assert not (tmp_path / "spool").exists()
    start_kept, lines_kept = read_interval_log(tmp_path / "kept.hlog")
    start_spooled, lines_spooled = read_interval_log(tmp_path / "spooled.hlog")
    assert start_kept == start_spooled
    order = sorted  # the spool keeps arrival order; the intervals are the same
    assert order(lines_kept, key=str) == order(lines_spooled, key=str)


def test_records_that_never_arrived_are_counted(make_record: MakeRecord) -> None:
    aggregator = RunAggregator(make_plan(), RUN_ID)
    for seq in (0, 1, 4, 5):  # 2 and 3 trimmed away
        aggregator.add(make_record("w0", seq))
    for seq in (0, 1, 2):
        aggregator.add(make_record("w1", seq))
    assert aggregator.missing_records() == {"w0": 2}
