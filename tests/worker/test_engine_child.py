"""A high-rate asyncio share runs in a child process, apart from the worker's threads: every record and
byte comes through, a stop reaches it, and its errors mean what they meant in the worker (real child
processes and a real server every time)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time

import psutil
import pytest
from tests.support.http_servers import OK_RESPONSE

from meshload.errors import RunError
from meshload.scenarios.schedule import WorkerShare
from meshload.worker.engine_process import ENGINE_PROCESS_ENV, ChildEngine, InProcessEngine, prepare_engine
from meshload.worker.engines import EngineJob, StopSignal
from meshload.worker.offloaded_recorder import FOLD_PROCESS_ENV

from .helpers import measure, open_plan


def test_a_high_rate_share_runs_in_a_child_and_every_record_and_byte_comes_through(http_server, monkeypatch) -> None:
    monkeypatch.delenv(ENGINE_PROCESS_ENV, raising=False)
    server = http_server("ok")
    rate, duration_s = 6_000, 2.0
    plan = open_plan(server.url, rate, duration_s)
    engine = prepare_engine(WorkerShare(plan))
    try:
        assert isinstance(engine, ChildEngine)  # and one at half the rate per worker stays here:
        assert isinstance(prepare_engine(WorkerShare(plan, index=0, count=2)), InProcessEngine)
    finally:
        engine.close()

    run = measure(plan)
    planned = round(rate * duration_s)
    assert run.sent == run.completed == run.outcome.completed == server.counters()["requests"] == planned
    assert run.bytes_received == planned * len(OK_RESPONSE) and run.errors == {}
    assert run.corrected.total_count == run.lag.total_count == planned
    assert [r.seq for r in run.records] == list(range(len(run.records))) and run.records[-1].final
    assert run.outcome.records == len(run.records)
    assert sum(r.fold_cpu_seconds for r in run.records) > 0  # the fold process is the child's child
    assert all(r.cpu_seconds > 0 for r in run.records[:-1])  # the engine's process: the child's own


def test_records_come_from_the_child_as_the_fold_process_encoded_them(http_server) -> None:
    """A worker whose sink takes records encoded gets them so from the child, never decoded on the way."""
    from meshload.results.interval import decode_record

    server = http_server("ok")
    rate, duration_s = 6_000, 1.5
    plan = open_plan(server.url, rate, duration_s)
    engine = prepare_engine(WorkerShare(plan))
    assert isinstance(engine, ChildEngine)
    records: list = []
    encoded: list[bytes] = []
    start_ns = time.monotonic_ns() + 200_000_000
    job = EngineJob(
        share=WorkerShare(plan), start_ns=start_ns, sink=records.append, encoded_sink=encoded.append, worker_id="w"
    )
    outcome = engine.run(job, StopSignal())

    assert records == [] and len(encoded) == outcome.records >= 2
    decoded = [decode_record(payload) for payload in encoded]
    assert [r.seq for r in decoded] == list(range(len(decoded))) and decoded[-1].final
    assert sum(r.completed for r in decoded) == server.counters()["requests"] == round(rate * duration_s)
    assert sum(r.bytes_received for r in decoded) == round(rate * duration_s) * len(OK_RESPONSE)


def test_a_stop_reaches_the_engine_in_its_child(http_server) -> None:
    server = http_server("ok")
    plan = open_plan(server.url, 6_000, 60.0)
    engine = prepare_engine(WorkerShare(plan))
    assert isinstance(engine, ChildEngine)
    records: list = []
    stop = StopSignal()
    start_ns = time.monotonic_ns() + 200_000_000
    job = EngineJob(share=WorkerShare(plan), start_ns=start_ns, sink=records.append, worker_id="w")
    threading.Timer(1.5, stop.request).start()
    began = time.monotonic()
    outcome = engine.run(job, stop)

    assert time.monotonic() - began < 10
    assert records[-1].final and outcome.records == len(records)
    assert outcome.completed == sum(r.completed for r in records) == server.counters()["requests"]
    assert 6_000 <= outcome.completed <= 12_000  # about 1.3 s at 6,000 rps
    assert engine._process.returncode == 0  # it ended as a child whose run is over, not as an orphan


def test_a_run_error_in_the_child_is_the_same_run_error_in_the_worker(http_server, monkeypatch) -> None:
    monkeypatch.setenv(FOLD_PROCESS_ENV, "sometimes")  # read by the engine's run, in the child
    server = http_server("ok")
    with pytest.raises(RunError, match=f"{FOLD_PROCESS_ENV}='sometimes' is not one of auto, always, never"):
        measure(open_plan(server.url, 6_000, 1.0))
    assert server.counters()["requests"] == 0  # refused before any load


def test_the_choice_can_be_forced_and_a_bad_setting_is_one_clear_error(http_server, monkeypatch) -> None:
    server = http_server("ok")
    monkeypatch.setenv(ENGINE_PROCESS_ENV, "never")
    assert isinstance(prepare_engine(WorkerShare(open_plan(server.url, 6_000, 1.0))), InProcessEngine)
    monkeypatch.setenv(ENGINE_PROCESS_ENV, "always")
    run = measure(open_plan(server.url, 300, 1.0))
    assert run.completed == server.counters()["requests"] == 300
    monkeypatch.setenv(ENGINE_PROCESS_ENV, "sometimes")
    with pytest.raises(RunError, match=f"{ENGINE_PROCESS_ENV}='sometimes' is not one of auto, always, never"):
        prepare_engine(WorkerShare(open_plan(server.url, 300, 1.0)))


def test_a_child_whose_worker_is_gone_leaves_at_once_with_its_fold_process(http_server) -> None:
    """The end of the child's stdin is its worker's end: it leaves (exit code 3) and its fold process
    with it, and nothing more is sent."""
    server = http_server("ok")
    plan = open_plan(server.url, 6_000, 60.0)
    engine = prepare_engine(WorkerShare(plan))
    assert isinstance(engine, ChildEngine)
    child = psutil.Process(engine._process.pid)
    start_ns = time.monotonic_ns() + 200_000_000
    job = EngineJob(share=WorkerShare(plan), start_ns=start_ns, sink=lambda record: None, worker_id="w")
    failures: list[BaseException] = []

    def run() -> None:
        try:
            engine.run(job, StopSignal())
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            failures.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    deadline = time.monotonic() + 10
    while not child.children() and time.monotonic() < deadline:
        time.sleep(0.05)
    (fold_process,) = child.children()
    assert engine._process.stdin is not None
    engine._process.stdin.close()  # as when the worker dies
    runner.join(15)
    assert not runner.is_alive()
    assert len(failures) == 1 and "exit code 3" in str(failures[0])
    fold_process.wait(10)  # raises if it is still there
    sent = server.counters()["requests"]
    time.sleep(0.5)
    assert server.counters()["requests"] == sent


_THREADS_OFF = """
import json, os, threading
from meshload.worker.cores import threads_off_our_cores
ready, done = threading.Event(), threading.Event()
def helper():
    ready.set()
    done.wait()
thread = threading.Thread(target=helper)
thread.start()
ready.wait()
tids = [int(t) for t in os.listdir("/proc/self/task")]
restore = threads_off_our_cores()
moved = {tid: sorted(os.sched_getaffinity(tid)) for tid in tids}
restore()
back = {tid: sorted(os.sched_getaffinity(tid)) for tid in tids}
done.set()
print(json.dumps({"threads": len(tids), "moved": sorted(moved.values()), "back": sorted(back.values())}))
"""


@pytest.mark.skipif((os.cpu_count() or 1) < 2 or shutil.which("taskset") is None, reason="needs 2 cores and taskset")
def test_a_pinned_worker_moves_its_threads_off_the_engines_core_and_back() -> None:
    done = subprocess.run(
        ["taskset", "-c", "1", sys.executable, "-c", _THREADS_OFF], capture_output=True, text=True, check=True
    )
    figures = json.loads(done.stdout)
    others = sorted(set(range(os.cpu_count() or 1)) - {1})
    assert figures["threads"] == 2
    assert figures["moved"] == [others, others]  # every thread, off core 1
    assert figures["back"] == [[1], [1]]
