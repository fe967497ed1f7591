"""Errors that would hide bugs: the worker's background threads catch what they mean (Redis going
away) and nothing else. A bug in one prints its traceback once and ends the run and the process with
an error, instead of passing for "Redis unreachable" and retrying for ever."""

from __future__ import annotations

import threading
import time

import pytest
from test_coordinator_pipeline import make_record
from tests.support.redis_server import RedisServer

from meshload.errors import InternalError
from meshload.pipeline import wire
from meshload.pipeline.publisher import RecordPublisher
from meshload.worker.process import WorkerProcess

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def thread_failures(monkeypatch: pytest.MonkeyPatch) -> list[BaseException]:
    """What reaches `threading.excepthook` (which prints a thread's traceback), in order."""
    reported: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: reported.append(args.exc_value))
    return reported


def test_a_bug_in_the_publisher_thread_fails_the_next_submit_and_close(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, thread_failures: list[BaseException]
) -> None:
    def broken_send(self: RecordPublisher, client: object, batch: object) -> None:
        raise ZeroDivisionError("a bug in the publisher")

    monkeypatch.setattr(RecordPublisher, "_send", broken_send)
    publisher = RecordPublisher(redis_server.url, wire.RunKeys("r1")).start()
    publisher.submit(make_record("w0", 0))
    deadline = time.monotonic() + 10
    while publisher._thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not publisher._thread.is_alive(), "the publisher went on retrying a bug"
    with pytest.raises(InternalError, match="ZeroDivisionError: a bug in the publisher"):
        publisher.submit(make_record("w0", 1))
    with pytest.raises(InternalError):
        publisher.close(timeout_s=1)
    assert publisher.failures == 0  # never counted as a Redis outage
    assert [type(exc) for exc in thread_failures] == [ZeroDivisionError]  # its traceback, printed once


def test_a_bug_in_the_heartbeat_ends_the_worker_with_an_error(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, thread_failures: list[BaseException]
) -> None:
    def broken_beat(self: WorkerProcess, client: object, active: object) -> None:
        raise ZeroDivisionError("a bug in the heartbeat")

    monkeypatch.setattr(WorkerProcess, "_beat_once", broken_beat)
    worker = WorkerProcess(redis_server.url, worker_id="buggy", idle_timeout_s=30)
    began = time.monotonic()
    with pytest.raises(InternalError, match="ZeroDivisionError: a bug in the heartbeat"):
        worker.serve()
    assert time.monotonic() - began < 10  # not after the idle timeout
    assert [type(exc) for exc in thread_failures] == [ZeroDivisionError]  # its traceback, printed once
    client = redis_server.client()
    assert client.hget(wire.fleet_key(), "buggy") is None  # it left the fleet on the way out
    client.close()
