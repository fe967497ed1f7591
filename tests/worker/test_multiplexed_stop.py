"""The gRPC and HTTP/2 engines keep the engine contract's stop (`base.StopSignal`): a stop from another
thread ends a run early with a final record, every call sent answered and counted, in both loops."""

from __future__ import annotations

import threading
import time

import pytest
from tests.support.grpc_servers import SERVICE
from tests.support.h2_servers import start_h2_server

from meshload.results.interval import IntervalRecord
from meshload.scenarios.plan import Plan
from meshload.scenarios.schedule import split_plan
from meshload.worker.engines import EngineJob, EngineOutcome, StopSignal, pick_engine


def _stopped_after(plan: Plan, seconds: float) -> tuple[list[IntervalRecord], EngineOutcome, float]:
    records: list[IntervalRecord] = []
    stop = StopSignal()
    job = EngineJob(share=split_plan(plan, 1)[0], start_ns=time.monotonic_ns(), sink=records.append, worker_id="w")
    stopper = threading.Timer(seconds, stop.request)
    stopper.start()
    began = time.monotonic()
    try:
        outcome = pick_engine(plan).run(job, stop)
    finally:
        stopper.cancel()
    return records, outcome, time.monotonic() - began


@pytest.mark.parametrize("loop_model", ["open", "closed"])
def test_grpc_stops_early_with_a_final_record(grpc_server, loadtest_schema, loop_model) -> None:
    server = grpc_server("ok")
    load = {"kind": "open", "rate": 200} if loop_model == "open" else {"kind": "closed", "concurrency": 2}
    plan = Plan(targets=[{"url": f"{server.url}{SERVICE}/Unary"}], load=load, duration_s=30.0, grpc=loadtest_schema)
    records, outcome, elapsed_s = _stopped_after(plan, 0.5)
    assert elapsed_s < 5
    assert records and records[-1].final and outcome.records == len(records)
    assert outcome.completed == outcome.sent == server.counters()["calls"] > 20
    assert outcome.errors == {}


@pytest.mark.parametrize("loop_model", ["open", "closed"])
def test_http2_stops_early_with_a_final_record(loop_model) -> None:
    server = start_h2_server("ok")
    try:
        load = {"kind": "open", "rate": 200} if loop_model == "open" else {"kind": "closed", "concurrency": 2}
        plan = Plan(targets=[{"url": server.url}], load=load, duration_s=30.0, http2=True)
        records, outcome, elapsed_s = _stopped_after(plan, 0.5)
        requests = server.counters()["requests"]
    finally:
        server.stop()
    assert elapsed_s < 5
    assert records and records[-1].final and outcome.records == len(records)
    assert outcome.completed == outcome.sent == requests > 20
    assert outcome.errors == {}
