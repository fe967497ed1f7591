"""Resuming a run whose workers finished while no coordinator listened: every record is in the stream,
some acknowledged by the dead coordinator (their figures went with it), some still pending in its
consumer's list, some never read. The resumed result counts each exactly once; a stream trimmed
before the resume is reported, not hidden."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import redis
from tests.results.conftest import RUN_ID, RecordFactory, make_plan
from tests.support.redis_server import RedisServer

from meshload.coordinator.resume import resume_run
from meshload.pipeline import wire
from meshload.results.interval import encode_record
from meshload.results.outputs import load_run_result

WORKERS = ("w0", "w1")
SECONDS = 12


def publish_finished_run(client: redis.Redis, factory: RecordFactory) -> int:
    """A detached run's Redis as its dead coordinator left it; the requests its workers completed."""
    keys = wire.RunKeys(RUN_ID)
    info = wire.ResumeInfo(
        run_id=RUN_ID,
        plan_json=make_plan().model_dump_json(),
        worker_ids=list(WORKERS),
        start_redis_us=wire.redis_time_us(client) - 30_000_000,  # the run ended a while ago
    )
    client.set(keys.resume, wire.encode(info))
    client.xgroup_create(keys.records, wire.CONSUMER_GROUP, id="0", mkstream=True)
    consumer = f"coordinator-{RUN_ID}"
    completed = 0
    for seq in range(SECONDS):
        for worker in WORKERS:
            record = factory(worker, seq, completed=20 + seq, warmup=seq == 0, final=seq == SECONDS - 1)
            completed += record.completed
            client.xadd(keys.records, {wire.RECORD_FIELD: encode_record(record)})
        if seq == 4:  # the dead coordinator had read and acknowledged these...
            read = cast(list[Any], client.xreadgroup(wire.CONSUMER_GROUP, consumer, {keys.records: ">"}))
            client.xack(keys.records, wire.CONSUMER_GROUP, *[entry_id for entry_id, _ in read[0][1]])
        if seq == 8:  # ... and read these, never acknowledged (pending)
            client.xreadgroup(wire.CONSUMER_GROUP, consumer, {keys.records: ">"})
    return completed


def test_a_run_that_finished_alone_is_resumed_exactly(tmp_path) -> None:
    factory = RecordFactory(np.random.default_rng(3))
    with RedisServer() as server:
        client = server.client()
        completed = publish_finished_run(client, factory)
        assert client.xpending(wire.RunKeys(RUN_ID).records, wire.CONSUMER_GROUP)["pending"] > 0
        result, out = resume_run(RUN_ID, server.url, out_dir=tmp_path / "out", live=False)
        # Finished: the run's keys are gone, its results kept.
        assert not client.exists(wire.RunKeys(RUN_ID).resume, wire.RunKeys(RUN_ID).records)
        client.close()
    assert out == tmp_path / "out"
    assert result.completed + result.warmup_completed == completed
    assert [w.records for w in result.workers] == [SECONDS, SECONDS]
    assert not any(w.lost for w in result.workers) and not result.degraded, result.validity
    assert [w.requests for w in result.workers] == [result.completed // 2] * 2  # each record once
    back = load_run_result(out)
    assert back.completed == result.completed and not back.partial


def test_records_trimmed_away_before_the_resume_are_reported(tmp_path) -> None:
    factory = RecordFactory(np.random.default_rng(4))
    with RedisServer() as server:
        client = server.client()
        publish_finished_run(client, factory)
        keys = wire.RunKeys(RUN_ID)
        oldest = cast(list[Any], client.xrange(keys.records, count=3))
        client.xdel(keys.records, *[entry_id for entry_id, _ in oldest])  # what MAXLEN trimming does
        result, _ = resume_run(RUN_ID, server.url, out_dir=tmp_path / "out", live=False)
        client.close()
    assert result.degraded
    assert any("records never reached the report" in reason for reason in result.validity), result.validity
