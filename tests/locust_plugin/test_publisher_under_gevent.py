"""The worker's record publisher in a gevent-patched process (a Locust worker): its thread is a greenlet
and its Redis client cooperative, so a frozen Redis never blocks the users, and every record still
arrives, once each, when Redis answers again."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support.redis_server import RedisServer

from meshload.pipeline import wire
from meshload.results.interval import decode_record

SCRIPT = Path(__file__).resolve().parent / "publisher_under_gevent.py"


@pytest.mark.timeout(60)
def test_a_frozen_redis_holds_up_no_greenlet_and_loses_no_record() -> None:
    with RedisServer() as redis_server:
        assert redis_server.process is not None
        answer = subprocess.run(
            [sys.executable, str(SCRIPT), redis_server.url, str(redis_server.process.pid)],
            capture_output=True,
            text=True,
            timeout=50,
            check=False,
        )
        assert answer.returncode == 0, answer.stderr[-3000:]
        seen = json.loads(answer.stdout.strip().splitlines()[-1])
        with redis_server.client() as client:
            entries = client.xrange(wire.RunKeys("gevent").records)

    assert seen["thread_is_greenlet"] is True
    assert seen["delivered_before"] is True and seen["delivered_while_paused"] == 5
    # The other greenlets kept their 10 ms rhythm while the publisher waited on the frozen Redis.
    assert seen["ticks_while_paused"] > 50 and seen["longest_gap_s"] < 0.25
    assert seen["all_delivered"] is True and seen["delivered"] == 10
    assert sorted(decode_record(fields[wire.RECORD_FIELD]).seq for _, fields in entries) == list(range(10))
