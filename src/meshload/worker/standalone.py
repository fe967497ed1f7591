"""Running a plan's shares without Redis: in this process for one worker, in spawned processes for more.

For tests and benchmarks. Every worker starts at one common `time.monotonic_ns()` instant (the clock
is system-wide on one host, so processes share it); their interval records are collected here and
merged by the results aggregator exactly as the coordinator merges records read from Redis.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import queue
import time
import uuid
from collections.abc import Sequence
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from typing import Any

from ..errors import RunError
from ..results.aggregate import RunAggregator
from ..results.interval import IntervalRecord, decode_record, encode_record
from ..results.run_result import RunResult
from ..scenarios.plan import Plan
from ..scenarios.schedule import WorkerShare, split_plan
from .engine_process import EngineHandle, prepare_engine
from .engines.base import EncodedRecordSink, EngineJob, EngineOutcome, RecordSink, StopSignal

#: Between "all workers ready" and the common start: time to open the first connections.
START_LEAD_S = 0.2
#: How long spawned workers may take to import and report ready.
READY_TIMEOUT_S = 60.0
#: Beyond the plan's own length (and its drain), how long we wait for a worker to finish.
FINISH_GRACE_S = 30.0


def worker_id_of(index: int) -> str:
    return f"standalone-{index}"


def run_standalone(plan: Plan, *, workers: int = 1, run_id: str = "", interval_s: float = 1.0) -> RunResult:
    """Run `plan` on `workers` local workers and return the merged result."""
    run_id = run_id or uuid.uuid4().hex[:12]
    records, _ = collect_records(plan, workers=workers, run_id=run_id, interval_s=interval_s)
    aggregator = RunAggregator(plan, run_id)
    for record in records:
        aggregator.add(record)
    return aggregator.result(environment={"generator": "meshload standalone", "workers": workers})


def collect_records(
    plan: Plan, *, workers: int = 1, run_id: str = "", interval_s: float = 1.0
) -> tuple[list[IntervalRecord], list[EngineOutcome]]:
    """Run `plan` on `workers` local workers; every interval record, and each worker's outcome."""
    if workers < 1:
        raise RunError(f"workers must be at least 1 (got {workers}); pass --workers 1 or more")
    if workers == 1:
        records: list[IntervalRecord] = []
        share = split_plan(plan, 1)[0]
        engine = prepare_engine(share)  # before the start instant: a locustfile takes a while to import
        start_ns = time.monotonic_ns() + round(START_LEAD_S * 1e9)
        outcome = run_share_blocking(
            share,
            engine=engine,
            start_ns=start_ns,
            sink=records.append,
            worker_id=worker_id_of(0),
            run_id=run_id,
            interval_s=interval_s,
        )
        return records, [outcome]
    return _collect_from_processes(plan, workers, run_id, interval_s)


def run_share_blocking(
    share: WorkerShare,
    *,
    engine: EngineHandle | None = None,
    start_ns: int,
    sink: RecordSink,
    worker_id: str,
    run_id: str = "",
    interval_s: float = 1.0,
    encoded_sink: EncodedRecordSink | None = None,
) -> EngineOutcome:
    """Run one share with the plan's engine (`engine`, prepared; else prepared now), on a fresh event
    loop in this thread, or in a child process of its kind when it needs another kind of process (a
    locustfile's users, on gevent)."""
    job = EngineJob(
        share=share,
        start_ns=start_ns,
        sink=sink,
        worker_id=worker_id,
        run_id=run_id,
        interval_s=interval_s,
        encoded_sink=encoded_sink,
    )
    if engine is None:
        engine = prepare_engine(share)
    try:
        return engine.run(job, StopSignal())
    finally:
        engine.close()


def _collect_from_processes(
    plan: Plan, workers: int, run_id: str, interval_s: float
) -> tuple[list[IntervalRecord], list[EngineOutcome]]:
    context = multiprocessing.get_context("spawn")
    messages = context.Queue()
    go = context.Event()
    start_at = context.Value("q", 0)
    processes = [
        context.Process(
            target=_worker_main,
            args=(plan.model_dump_json(), index, workers, run_id, interval_s, messages, go, start_at),
            name=worker_id_of(index),
            daemon=True,
        )
        for index in range(workers)
    ]
    for process in processes:
        process.start()
    try:
        _wait_ready(messages, processes)
        start_at.value = time.monotonic_ns() + round(START_LEAD_S * 1e9)
        go.set()
        deadline_s = time.monotonic() + START_LEAD_S + plan.total_s + plan.timeout_s + FINISH_GRACE_S
        records: list[IntervalRecord] = []
        outcomes: list[EngineOutcome] = []
        while len(outcomes) < workers:
            kind, payload = _next_message(messages, processes, deadline_s)
            if kind == "record":
                records.append(decode_record(payload))
            elif kind == "done":
                outcomes.append(EngineOutcome(**payload))
            elif kind == "failed":
                raise RunError(f"a standalone worker failed: {payload}")
        return records, outcomes
    finally:
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)


#: What a spawned worker tells its parent: ("ready", index), ("record", bytes), ("done", outcome
#: fields) or ("failed", one line).
Message = tuple[str, Any]


def _wait_ready(messages: Queue[Message], processes: Sequence[BaseProcess]) -> None:
    deadline_s = time.monotonic() + READY_TIMEOUT_S
    ready = 0
    while ready < len(processes):
        kind, payload = _next_message(messages, processes, deadline_s)
        if kind == "failed":
            raise RunError(f"a standalone worker failed to start: {payload}")
        ready += kind == "ready"


def _next_message(messages: Queue[Message], processes: Sequence[BaseProcess], deadline_s: float) -> Message:
    while True:
        try:
            message: Message = messages.get(timeout=0.2)
            return message
        except queue.Empty:
            pass
        if time.monotonic() > deadline_s:
            raise RunError("standalone workers did not finish in time; is the machine overloaded?")
        dead = [p for p in processes if p.exitcode not in (None, 0)]
        if dead:
            raise RunError(f"standalone worker {dead[0].name} exited with code {dead[0].exitcode}")


def _worker_main(
    plan_json: str,
    index: int,
    workers: int,
    run_id: str,
    interval_s: float,
    messages: Queue[Message],
    go: Event,
    start_at: Synchronized[int],
) -> None:
    """A spawned worker: report ready, wait for the common start, stream records back."""
    try:
        plan = Plan.model_validate_json(plan_json)
        share = WorkerShare(plan, index, workers)
        engine = prepare_engine(share)
        messages.put(("ready", index))
        go.wait()
        outcome = run_share_blocking(
            share,
            engine=engine,
            start_ns=start_at.value,
            sink=lambda record: messages.put(("record", encode_record(record))),
            encoded_sink=lambda encoded: messages.put(("record", encoded)),
            worker_id=worker_id_of(index),
            run_id=run_id,
            interval_s=interval_s,
        )
        messages.put(("done", dataclasses.asdict(outcome)))
    except BaseException as exc:  # reported to the parent as one line, then re-raised for the exit code
        messages.put(("failed", f"{worker_id_of(index)}: {type(exc).__name__}: {exc}"))
        raise


__all__ = ["collect_records", "run_share_blocking", "run_standalone", "worker_id_of"]
