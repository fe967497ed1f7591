"""The fold process: the same records as folding on the loop, cuts that convert nothing, failures
that fail the run, and an engine at a high rate using it (a real child process every time)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
import uvloop
from tests.support.http_servers import OK_RESPONSE

from meshload.errors import RunError
from meshload.results.histogram import LatencyHistogram
from meshload.results.interval import IntervalRecord
from meshload.scenarios.schedule import WorkerShare
from meshload.worker import recorder as recorder_module
from meshload.worker.fold_channel import FoldChannel
from meshload.worker.offloaded_recorder import (
    FOLD_PROCESS_ENV,
    OffloadedRecorder,
    wants_fold_process,
)
from meshload.worker.recorder import IntervalRecorder

from .helpers import measure, open_plan

CAPACITY = 64
MS = 1_000_000  # ns


def _run(main: Callable[[], Any]) -> Any:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main())


def _responses(seed: int, count: int) -> list[tuple[str, int, int, int, int]]:
    """Responses and errors as an engine would record them: ("response", planned, sent, done,
    status) or ("error", planned, sent, 0, 0), with lags from 0 to 3 ms and latencies up to 2 s."""
    rng = random.Random(seed)
    events = []
    for i in range(count):
        planned = 10 * MS + i * MS // 3
        sent = planned + rng.choice((0, 20_000, 400_000, 3 * MS))
        if rng.random() < 0.03:
            events.append(("error", planned, sent, 0, 0))
        else:
            done = sent + rng.randrange(50_000, 2_000 * MS)
            events.append(("response", planned, sent, done, rng.choice((200, 200, 200, 503, 404))))
    return events


def _feed(recorder: IntervalRecorder, event: tuple[str, int, int, int, int]) -> None:
    kind, planned, sent, done, status = event
    recorder.sent += 1
    if kind == "error":
        recorder.record_error("reset", planned, sent)
    else:
        recorder.record_response(planned, sent, done, status)


def _cut_options(seq: int, final: bool) -> dict[str, Any]:
    return {"offset_s": float(seq), "duration_s": 1.0, "start_unix_ms": 1_000 + seq, "final": final}


def _comparable(record: IntervalRecord) -> dict[str, Any]:
    """A record's measurements (CPU figures differ between any two runs)."""
    fields = {
        name: getattr(record, name)
        for name in ("seq", "sent", "completed", "status_codes", "errors", "late", "clamped", "final", "offset_s")
    }
    for name in ("latency_corrected", "latency_uncorrected", "schedule_lag"):
        fields[name] = LatencyHistogram.decode(getattr(record, name)).counts_array().tolist()
    return fields


def test_records_equal_those_folded_on_the_loop_whatever_the_cuts() -> None:
    """The same responses and errors, cut at the same points (mid-buffer, across several full
    buffers, and twice within one buffer), give the same records either way."""
    events = _responses(seed=7, count=1_000)
    # Responses between cuts: less than a buffer, several buffers, a buffer exactly, two cuts in one.
    cut_after = [10, 150, 214, 278, 300, 555, 1_000]

    async def folded_on_the_loop() -> list[IntervalRecord]:
        recorder = IntervalRecorder(worker_id="w", capacity=CAPACITY)
        recorder.defer = asyncio.get_running_loop().call_soon
        return await _cut_at(recorder, events, cut_after)

    async def folded_aside() -> list[IntervalRecord]:
        channel = FoldChannel(on_failure=_raise)
        recorder = OffloadedRecorder(channel, worker_id="w", capacity=CAPACITY)
        await channel.start()
        try:
            recorder.defer = asyncio.get_running_loop().call_soon
            return await _cut_at(recorder, events, cut_after)
        finally:
            await channel.close()

    expected = _run(folded_on_the_loop)
    aside = _run(folded_aside)
    assert [_comparable(r) for r in aside] == [_comparable(r) for r in expected]
    assert sum(r.completed for r in aside) == sum(1 for e in events if e[0] == "response")
    assert sum(r.late for r in aside) > 0 and any(r.errors for r in aside)
    assert any(r.fold_cpu_seconds > 0 for r in aside)


async def _cut_at(
    recorder: IntervalRecorder, events: list[tuple[str, int, int, int, int]], cut_after: list[int]
) -> list[IntervalRecord]:
    pending = []
    fed = 0
    for seq, end in enumerate(cut_after):
        for event in events[fed:end]:
            _feed(recorder, event)
            await asyncio.sleep(0)  # the loop takes the steps of a full buffer's fold in between
        fed = end
        detached = recorder.detach(**_cut_options(seq, final=end == len(events)))
        for _ in detached.steps():
            await asyncio.sleep(0)
        pending.append(detached)
    return [await each.completed(now=True) for each in pending]


def test_a_cut_converts_nothing_and_its_responses_go_with_the_full_buffer() -> None:
    sent: list[tuple[str, int, int]] = []

    async def main() -> tuple[IntervalRecord, IntervalRecord]:
        channel = FoldChannel(on_failure=_raise)
        recorder = OffloadedRecorder(channel, worker_id="w", capacity=CAPACITY)
        await channel.start()
        send_fold, send_cut = channel.send_fold, channel.send_cut

        def fold_seen(seq: int, columns: Any) -> None:
            sent.append(("fold", seq, len(columns) // 4))
            send_fold(seq, columns)

        def cut_seen(seq: int, cut: bytes) -> None:
            sent.append(("cut", seq, 0))
            send_cut(seq, cut)

        channel.send_fold = fold_seen  # type: ignore[method-assign]
        channel.send_cut = cut_seen  # type: ignore[method-assign]
        try:
            for i in range(40):
                recorder.record_response(i * MS, i * MS, i * MS + 5 * MS, 200)
            first = recorder.detach(**_cut_options(0, final=False))
            assert list(first.steps()) == [] and sent == []  # the cut sent and converted nothing
            assert not first.ready
            for i in range(40, CAPACITY):
                recorder.record_response(i * MS, i * MS, i * MS + 7 * MS, 200)
            # The full buffer went out in two parts, each its interval's, then the first cut's counters.
            assert sent == [("fold", 0, 40), ("fold", 1, CAPACITY - 40), ("cut", 0, 0)]
            record = await first.completed(now=False)
            last = recorder.detach(**_cut_options(1, final=True))
            return record, await last.completed()
        finally:
            await channel.close()

    first, last = _run(main)
    assert first.completed == 40 and last.completed == CAPACITY - 40
    assert LatencyHistogram.decode(first.latency_corrected).value_at_percentile(100) == pytest.approx(5_000, rel=0.01)
    assert LatencyHistogram.decode(last.latency_corrected).value_at_percentile(0) == pytest.approx(7_000, rel=0.01)


def test_a_full_buffer_goes_out_in_a_deferred_step() -> None:
    """A full buffer is sent in a step the loop takes between its callbacks (not in the response's
    callback that filled it), and that step sends every response."""
    capacity = 4_096 + 3

    async def main() -> tuple[int, IntervalRecord]:
        channel = FoldChannel(on_failure=_raise)
        recorder = OffloadedRecorder(channel, worker_id="w", capacity=capacity)
        deferred: list[Callable[[], None]] = []
        recorder.defer = deferred.append
        await channel.start()
        try:
            for i in range(capacity):
                recorder.record_response(i * MS, i * MS, i * MS + 3 * MS, 200)
            steps = 0
            while deferred:
                deferred.pop(0)()
                steps += 1
            final = recorder.detach(**_cut_options(0, final=True))
            return steps, await final.completed()
        finally:
            await channel.close()

    steps, record = _run(main)
    assert steps >= 1
    assert record.completed == capacity and record.status_codes == {"200": capacity}
    assert LatencyHistogram.decode(record.latency_corrected).total_count == capacity


def test_a_cut_leaves_reading_the_process_cpu_to_a_piece_after_it(monkeypatch) -> None:
    """The cut makes no system call: the process's CPU is read by a piece the loop runs just after it,
    and each record carries the CPU up to that read, none lost or counted twice; a final cut reads it
    at once, and a record made before the piece ran reads it then."""
    cpu_reads: list[float] = []
    clock = iter([10.0, 10.5, 10.75, 11.0, 12.0])

    def process_cpu_seconds() -> float:
        cpu_reads.append(next(clock))
        return cpu_reads[-1]

    monkeypatch.setattr(recorder_module, "process_cpu_seconds", process_cpu_seconds)

    async def main() -> list[IntervalRecord]:
        channel = FoldChannel(on_failure=_raise)
        recorder = OffloadedRecorder(channel, worker_id="w", capacity=CAPACITY)  # reads 10.0
        deferred: list[Callable[[], None]] = []
        recorder.defer = deferred.append
        await channel.start()
        try:
            recorder.record_response(0, 0, MS, 200)
            first = recorder.detach(**_cut_options(0, final=False))
            assert cpu_reads == [10.0], "the cut read the CPU itself"
            while deferred:
                deferred.pop(0)()  # reads 10.5
            assert cpu_reads == [10.0, 10.5]
            recorder.record_response(MS, MS, 2 * MS, 200)
            second = recorder.detach(**_cut_options(1, final=False))
            # Sent before its piece ran (the run's end flushes everything): the record reads it (10.75).
            second_record = await second.completed(now=True)
            while deferred:
                deferred.pop(0)()  # nothing left to read
            assert cpu_reads == [10.0, 10.5, 10.75]
            last = recorder.detach(**_cut_options(2, final=True))  # reads 11.0 at once
            assert cpu_reads == [10.0, 10.5, 10.75, 11.0]
            return [await first.completed(), second_record, await last.completed()]
        finally:
            await channel.close()

    records = _run(main)
    assert [record.cpu_seconds for record in records] == [0.5, 0.25, 0.25]
    assert [record.completed for record in records] == [1, 1, 0]


def test_a_fold_process_that_dies_fails_the_run_with_the_reason() -> None:
    failures: list[BaseException] = []

    async def main() -> None:
        channel = FoldChannel(on_failure=failures.append)
        recorder = OffloadedRecorder(channel, worker_id="w", capacity=CAPACITY)
        await channel.start()
        try:
            recorder.record_response(0, 0, MS, 200)
            assert channel._transport is not None
            os.kill(channel._transport.get_pid(), signal.SIGKILL)
            for _ in range(200):
                if failures:
                    break
                await asyncio.sleep(0.01)
            pending = recorder.detach(**_cut_options(0, final=True))
            with pytest.raises(RunError, match="fold process ended"):
                await pending.completed()
        finally:
            await channel.close()

    _run(main)
    assert len(failures) == 1 and "exit code -9" in str(failures[0])


def test_high_rate_open_loops_use_it_and_a_bad_setting_is_one_clear_error(monkeypatch, http_server) -> None:
    server = http_server("ok")
    monkeypatch.delenv(FOLD_PROCESS_ENV, raising=False)
    assert wants_fold_process(WorkerShare(open_plan(server.url, 6_000, 1.0)))
    assert not wants_fold_process(WorkerShare(open_plan(server.url, 6_000, 1.0), index=0, count=2))
    monkeypatch.setenv(FOLD_PROCESS_ENV, "sometimes")
    with pytest.raises(RunError, match=f"{FOLD_PROCESS_ENV}='sometimes' is not one of auto, always, never"):
        wants_fold_process(WorkerShare(open_plan(server.url, 100, 1.0)))
    monkeypatch.delenv(FOLD_PROCESS_ENV)

    rate, duration_s = 6_000, 2.0
    run = measure(open_plan(server.url, rate, duration_s))
    planned = round(rate * duration_s)
    assert run.sent == run.completed == server.counters()["requests"] == planned
    assert run.status_codes == {"200": planned} and run.errors == {}
    assert run.bytes_received == planned * len(OK_RESPONSE)
    assert run.corrected.total_count == run.uncorrected.total_count == run.lag.total_count == planned
    assert [r.seq for r in run.records] == list(range(len(run.records))) and run.records[-1].final
    assert sum(r.fold_cpu_seconds for r in run.records) > 0  # the histograms were folded aside


def _raise(exc: BaseException) -> None:
    raise exc


@pytest.mark.parametrize("encoded", [False, True], ids=["records", "encoded"])
def test_records_pass_on_encoded_with_none_decoded_on_the_loop(monkeypatch, http_server, encoded) -> None:
    """Where the sink takes records encoded (an engine's child process, writing them to its worker),
    the fold process's answers go on as they came: the loop decodes only the final one, which the
    run's end awaits (with a sink of records, every one). What goes on is the whole record."""
    import meshload.worker.offloaded_recorder as offloaded
    from meshload.results.interval import decode_record
    from meshload.worker.engine_process import ENGINE_PROCESS_ENV
    from meshload.worker.standalone import START_LEAD_S, run_share_blocking

    monkeypatch.setenv(FOLD_PROCESS_ENV, "always")
    monkeypatch.setenv(ENGINE_PROCESS_ENV, "never")
    decodes: list[bytes] = []

    def counted_decode(payload: bytes) -> IntervalRecord:
        decodes.append(payload)
        return decode_record(payload)

    monkeypatch.setattr(offloaded, "decode_record", counted_decode)
    server = http_server("ok")
    rate, duration_s = 1_000, 3.0
    records: list[IntervalRecord] = []
    encoded_records: list[bytes] = []
    outcome = run_share_blocking(
        WorkerShare(open_plan(server.url, rate, duration_s)),
        start_ns=time.monotonic_ns() + round(START_LEAD_S * 1e9),
        sink=records.append,
        encoded_sink=encoded_records.append if encoded else None,
        worker_id="w0",
        interval_s=1.0,
    )
    if encoded:
        assert records == [] and len(encoded_records) == outcome.records >= 3
        assert len(decodes) == 1 and decodes[0] == encoded_records[-1]
        records = [decode_record(payload) for payload in encoded_records]
    else:
        assert encoded_records == [] and len(decodes) == len(records) == outcome.records >= 3
    planned = round(rate * duration_s)
    assert [r.seq for r in records] == list(range(len(records))) and records[-1].final
    assert sum(r.completed for r in records) == server.counters()["requests"] == planned
    assert sum(r.bytes_received for r in records) == planned * len(OK_RESPONSE)
    assert sum(LatencyHistogram.decode(r.latency_corrected).total_count for r in records) == planned
