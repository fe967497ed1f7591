"""The recorder: exact values in the histograms, fixed memory, errors kept apart, clean cuts."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest

from meshload.results.histogram import LatencyHistogram
from meshload.results.interval import IntervalRecord, decode_record, encode_record
from meshload.worker.cpu import process_cpu_seconds
from meshload.worker.recorder import LATE_THRESHOLD_US, IntervalRecorder

MS = 1_000_000  # ns


def _cut(recorder: IntervalRecorder, **overrides: Any) -> IntervalRecord:
    options: dict[str, Any] = {"offset_s": 0.0, "duration_s": 1.0, "start_unix_ms": 1}
    options.update(overrides)
    return decode_record(encode_record(recorder.cut(**options)))


def _deflate_block_types(blob: str) -> set[int]:
    """The types of a V2 blob's deflate blocks (0 stored, 1 fixed, 2 dynamic Huffman), read from
    the stored blocks' headers; a first block that is not stored ends the walk."""
    stream = base64.b64decode(blob)[8 + 2 :]  # past the V2 header and zlib's two bytes
    types, offset = set(), 0
    while True:
        header = stream[offset]
        kind = (header >> 1) & 0b11
        types.add(kind)
        if kind != 0:
            return types
        length = int.from_bytes(stream[offset + 1 : offset + 3], "little")
        offset += 5 + length
        if header & 1:  # the final block
            return types


def test_values_land_in_the_right_histograms_and_folds_keep_memory_fixed() -> None:
    recorder = IntervalRecorder(worker_id="w", run_id="r", clock_offset_ms=1.5, capacity=16)
    rows = [len(column) for column in recorder.buffers]
    # 100 responses: planned at 0, sent 2 ms late, done 10 ms after planned (so 8 ms after the send).
    for i in range(100):
        base = i * 100 * MS
        recorder.record_response(base, base + 2 * MS, base + 10 * MS, 200 if i % 4 else 503)
    recorder.record_error("reset", planned_ns=5 * MS, sent_ns=5 * MS + 10_000)
    recorder.record_error("connect_refused", planned_ns=7 * MS)
    recorder.record_missed(3)
    recorder.sent += 101
    assert [len(column) for column in recorder.buffers] == rows == [16] * 4  # nothing grown

    record = _cut(recorder, warmup=True)
    corrected = LatencyHistogram.decode(record.latency_corrected)
    uncorrected = LatencyHistogram.decode(record.latency_uncorrected)
    lag = LatencyHistogram.decode(record.schedule_lag)
    assert corrected.total_count == uncorrected.total_count == 100  # errors stay out
    assert abs(corrected.value_at_percentile(50) - 10_000) <= 10
    assert abs(uncorrected.value_at_percentile(99) - 8_000) <= 8
    assert lag.total_count == 101  # the reset request was sent: its lag counts
    assert record.completed == 100 and record.sent == 101
    assert record.status_codes == {"200": 75, "503": 25}
    assert record.errors == {"reset": 1, "connect_refused": 1, "not_sent": 3}
    assert record.missed == 3
    assert record.late == 100  # 2 ms lag > LATE_THRESHOLD_US; the reset's 10 µs is not late
    assert 2_000 > LATE_THRESHOLD_US > 10
    assert record.clock_offset_ms == 1.5 and record.warmup and record.seq == 0 and record.run_id == "r"
    # Stored, not deflated (zlib level 0, the coordinator's cheapest to decode): every deflate block
    # of the blobs is of type 00.
    for blob in (record.latency_corrected, record.latency_uncorrected, record.schedule_lag):
        assert _deflate_block_types(blob) == {0}

    # The next cut starts from nothing.
    recorder.record_response(0, 0, 1 * MS, 200)
    second = _cut(recorder, offset_s=1.0, final=True)
    assert second.seq == 1 and second.final
    assert second.completed == 1 and second.sent == 0 and second.errors == {} and second.missed == 0
    assert LatencyHistogram.decode(second.latency_corrected).total_count == 1
    assert recorder.total_completed == 101 and recorder.total_errors["not_sent"] == 3


def test_cpu_seconds_are_this_processes_own() -> None:
    recorder = IntervalRecorder(worker_id="w")
    # Burn CPU inside the interval until the process clock (which ticks every 10 ms or so) has seen it.
    started = process_cpu_seconds()
    total = 0
    while process_cpu_seconds() - started < 0.02:
        for i in range(10_000):
            total += i * i
    record = recorder.cut(offset_s=0.0, duration_s=1.0, start_unix_ms=0)
    assert 0.02 <= record.cpu_seconds < 5 and total > 0


def _record_many(recorder: IntervalRecorder, first: int, count: int) -> None:
    """`count` responses, each 1-5 ms late (some over the late threshold) and with its own latency."""
    for i in range(first, first + count):
        planned = i * 10 * MS
        sent = planned + (i % 5) * 300_000
        recorder.record_response(planned, sent, sent + (1 + i % 7) * MS, 200 if i % 3 else 500)


def _figures(record: IntervalRecord) -> tuple[Any, ...]:
    return (
        record.completed,
        record.late,
        record.status_codes,
        LatencyHistogram.decode(record.latency_corrected).counts_array().tolist(),
        LatencyHistogram.decode(record.latency_uncorrected).counts_array().tolist(),
        LatencyHistogram.decode(record.schedule_lag).counts_array().tolist(),
    )


def test_a_full_buffer_folds_in_deferred_steps_of_one_histogram_batch() -> None:
    # A full buffer is folded in steps the loop interleaves with its sends (one histogram batch
    # each, so no step holds a send up for long), to the figures of folding it at once.
    capacity = 4_096 + 5
    plain = IntervalRecorder(worker_id="w", capacity=capacity)
    stepped = IntervalRecorder(worker_id="w", capacity=capacity)
    deferred: list[Callable[[], None]] = []
    stepped.defer = deferred.append
    _record_many(plain, 0, capacity)
    _record_many(stepped, 0, capacity)
    steps = 0
    while deferred:
        deferred.pop(0)()
        steps += 1
    # Three histograms (corrected, uncorrected, lag), a step each, and the statuses' count.
    assert steps >= 3
    options: dict[str, Any] = {"offset_s": 0.0, "duration_s": 1.0, "start_unix_ms": 1}
    assert _figures(stepped.cut(**options)) == _figures(plain.cut(**options))


def test_cuts_in_steps_and_deferred_folds_give_the_records_of_a_cut_at_once() -> None:
    # The same responses through a recorder that cuts at once, and through one whose full buffers
    # fold in deferred steps and whose cuts detach, one of them while a full buffer is half folded.
    plain = IntervalRecorder(worker_id="w", capacity=16)
    stepped = IntervalRecorder(worker_id="w", capacity=16)
    deferred: list[Callable[[], None]] = []
    stepped.defer = deferred.append

    def run_deferred(steps: int) -> None:
        for _ in range(steps):
            if deferred:
                deferred.pop(0)()

    options: dict[str, Any] = {"offset_s": 0.0, "duration_s": 1.0, "start_unix_ms": 1}
    _record_many(plain, 0, 20)
    _record_many(stepped, 0, 20)  # a full buffer (16) folding in deferred steps, 4 more buffered
    run_deferred(1)
    expected = [plain.cut(**options)]
    pending = stepped.detach(**options)  # takes the half-folded buffer over
    _record_many(plain, 20, 20)
    _record_many(stepped, 20, 16)  # full while the spare is still the cut's: folded at once
    steps = sum(1 for _ in pending.steps())
    assert steps >= 3 and pending.done
    _record_many(stepped, 36, 20)  # full again, now folding in steps
    _record_many(plain, 40, 16)
    run_deferred(2)
    expected.append(plain.cut(**options))
    stepped_records = [pending.record, stepped.detach(**options).finish()]
    run_deferred(100)  # what is left scheduled finds nothing to do

    for ours, theirs in zip(stepped_records, expected, strict=True):
        assert _figures(ours) == _figures(theirs)
    assert [r.completed for r in stepped_records] == [20, 36]
    assert stepped.total_completed == plain.total_completed == 56
    assert all(r.late and len(r.status_codes) == 2 for r in stepped_records)
    # One pending record at a time.
    second = stepped.detach(**options)
    with pytest.raises(RuntimeError, match="not finished"):
        stepped.detach(**options)
    second.finish()
