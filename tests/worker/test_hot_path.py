"""The compiled response path: its clock is Python's, and its buffers refuse what they cannot hold."""

from __future__ import annotations

import errno
import os
import select
import time
from collections import deque

import httptools
import numpy as np
import pytest

from meshload.worker import hot_path
from meshload.worker.recorder import IntervalRecorder

MS = 1_000_000  # ns


def test_its_clock_is_the_clock_of_time_monotonic_ns() -> None:
    # The closed loop's instants are taken in C and compared with ones taken in Python (the run's
    # end, a cut's boundary): the two clocks must be one.
    for _ in range(1_000):
        before = time.monotonic_ns()
        inside = hot_path.monotonic_ns()
        after = time.monotonic_ns()
        assert before <= inside <= after


def test_buffers_of_the_wrong_kind_are_refused() -> None:
    recorder = IntervalRecorder(worker_id="w", capacity=8)
    floats = (np.zeros(8), np.zeros(8), np.zeros(8), np.zeros(8))
    with pytest.raises(ValueError, match="dtype"):
        recorder.buffers = floats
    column = np.zeros(16, dtype=np.int64)[::2]
    strided = (column, column, column, column)
    with pytest.raises(ValueError, match="contiguous"):
        recorder.buffers = strided


def test_a_row_past_the_buffers_is_an_error_not_a_write() -> None:
    recorder = IntervalRecorder(worker_id="w", capacity=8)
    short = np.zeros(4, dtype=np.int64)  # shorter than the capacity
    recorder.buffers = (short, short.copy(), short.copy(), short.copy())
    for i in range(4):
        recorder.record_response(i * MS, i * MS, i * MS + MS, 200)
    with pytest.raises(IndexError, match="4 rows"):
        recorder.record_response(0, 0, MS, 200)
    assert recorder.count == 4


def test_recorded_rows_are_the_integers_given() -> None:
    recorder = IntervalRecorder(worker_id="w", capacity=8)
    recorder.record_response(1, 2, 3, 503)
    recorder.record_response(2**62, 2**62 + 1, 2**62 + 2, 200)
    planned, sent, done, statuses = (column[: recorder.count].tolist() for column in recorder.buffers)
    assert (planned, sent, done, statuses) == ([1, 2**62], [2, 2**62 + 1], [3, 2**62 + 2], [503, 200])


def test_a_connection_not_set_up_for_the_closed_loop_is_refused_not_crashed() -> None:
    core = hot_path.ConnectionCore()
    with pytest.raises(TypeError, match="closed-loop control"):
        core.closed_loop_message_complete()
    core._recorder = IntervalRecorder(worker_id="w", capacity=8)
    with pytest.raises(TypeError, match="closed-loop control"):
        core.closed_loop_message_complete()


def test_a_connection_not_set_up_for_the_open_loop_is_refused_not_crashed() -> None:
    core = hot_path.ConnectionCore()
    core._recorder = IntervalRecorder(worker_id="w", capacity=8)
    with pytest.raises(TypeError, match="open-loop control and a pool"):
        core.open_loop_message_complete()
    core.open_loop = hot_path.OpenLoopControl(0)
    with pytest.raises(TypeError, match="open-loop control and a pool"):
        core.open_loop_message_complete()


class _Runner:
    """What an open-loop response asks of its runner, written down."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def release(self, pool: hot_path.PoolCore, conn: object) -> None:
        self.calls.append(("release", pool))

    def await_server_close(self, conn: object) -> None:
        self.calls.append(("await_server_close", conn))

    def send_due(self, now_ns: int) -> None:
        self.calls.append(("send_due", now_ns))


class _OpenLoopConnection(hot_path.ConnectionCore):
    on_message_complete = hot_path.ConnectionCore.open_loop_message_complete


def _open_loop_connection(
    next_due_ns: int, pending: list
) -> tuple[_OpenLoopConnection, _Runner, hot_path.PoolCore, hot_path.OpenLoopControl]:
    conn = _OpenLoopConnection()
    conn.runner = runner = _Runner()
    conn._recorder = IntervalRecorder(worker_id="w", capacity=8)
    conn.open_loop = control = hot_path.OpenLoopControl(next_due_ns)
    conn.pool = pool = hot_path.PoolCore()
    pool.idle = []
    pool.pending = deque(pending)
    conn._parser = httptools.HttpResponseParser(conn)
    conn.planned_ns, conn.sent_ns, conn.busy = 5 * MS, 6 * MS, True
    return conn, runner, pool, control


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
CLOSING = b"HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


def test_an_open_loop_response_is_recorded_and_parks_its_connection() -> None:
    conn, runner, pool, _ = _open_loop_connection(next_due_ns=2**62, pending=[])
    before = time.monotonic_ns()
    conn._parser.feed_data(OK)
    recorder = conn._recorder
    assert recorder.count == 1
    planned, sent, done, status = (int(column[0]) for column in recorder.buffers)
    assert (planned, sent, status) == (5 * MS, 6 * MS, 200)
    assert before <= done <= time.monotonic_ns()
    assert not conn.busy
    assert pool.idle == [conn]
    assert runner.calls == []  # nothing waiting, nothing due


def test_an_open_loop_response_hands_its_connection_to_a_waiting_send_and_sends_what_is_due() -> None:
    conn, runner, pool, _ = _open_loop_connection(next_due_ns=1, pending=[(1, b"GET / HTTP/1.1\r\n\r\n", 0)])
    conn._parser.feed_data(OK)
    assert [name for name, _ in runner.calls] == ["release", "send_due"]
    assert runner.calls[0][1] is pool
    assert pool.idle == []


def test_an_open_loop_response_leaves_waiting_sends_alone_once_they_are_abandoned() -> None:
    conn, runner, pool, control = _open_loop_connection(next_due_ns=2**62, pending=[(1, b"GET / HTTP/1.1\r\n\r\n", 0)])
    control.accepting_sends = False
    conn._parser.feed_data(OK)
    assert runner.calls == []
    assert pool.idle == [conn]


def test_an_open_loop_response_that_closes_waits_for_the_server_and_ignores_unasked_answers() -> None:
    conn, runner, pool, _ = _open_loop_connection(next_due_ns=2**62, pending=[])
    conn._parser.feed_data(CLOSING)
    assert runner.calls == [("await_server_close", conn)]
    assert conn._recorder.count == 1
    assert int(conn._recorder.buffers[3][0]) == 503
    assert pool.idle == []

    late, late_runner, _, _ = _open_loop_connection(next_due_ns=1, pending=[])
    late.busy = False  # timed out already: the late answer is nobody's
    late._parser.feed_data(OK)
    assert late._recorder.count == 0
    assert late_runner.calls == []


def test_arming_what_is_not_a_timer_is_an_error_not_ignored() -> None:
    # The open loop sleeps on this timer: a failed arm would leave a send waiting for a wake-up that
    # never comes, so it raises (ctypes' call returned -1 unread).
    with pytest.raises(OSError) as raised:
        hot_path.timerfd_arm(-1, time.monotonic_ns())
    assert raised.value.errno == errno.EBADF


def test_an_armed_timer_becomes_readable_at_its_instant_and_not_before() -> None:
    fd = hot_path.timerfd_create()
    assert fd >= 0
    try:
        due_ns = time.monotonic_ns() + 20 * MS
        hot_path.timerfd_arm(fd, due_ns)
        assert select.select([fd], [], [], 0)[0] == []
        assert select.select([fd], [], [], 2)[0] == [fd]
        assert time.monotonic_ns() >= due_ns
        hot_path.timerfd_arm(fd, time.monotonic_ns() + 10 * MS)
        hot_path.timerfd_arm(fd, 0)  # disarmed: never readable
        assert select.select([fd], [], [], 0.05)[0] == []
    finally:
        os.close(fd)


class _WaitingRunner:
    def __init__(self) -> None:
        self.waiting: list[tuple[hot_path.PoolCore, int, bytes]] = []

    def wait_for_connection(self, pool: hot_path.PoolCore, planned_ns: int, payload: bytes) -> None:
        self.waiting.append((pool, planned_ns, payload))


class _Sent(hot_path.ConnectionCore):
    """A connection whose transport writes into a list."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self._write = self.written.append


def _pool(*conns: hot_path.ConnectionCore) -> hot_path.PoolCore:
    pool = hot_path.PoolCore()
    pool.idle = list(conns)
    pool.pending = deque()
    return pool


def test_the_dispatcher_sends_the_targets_in_turn_on_free_connections_and_skips_retired_ones() -> None:
    first, retired, second = _Sent(), _Sent(), _Sent()
    retired.retired = True
    pools = [_pool(first), _pool(second, retired)]  # idle connections are taken from the end
    runner = _WaitingRunner()
    recorder = IntervalRecorder(worker_id="w", capacity=8)
    dispatcher = hot_path.OpenLoopDispatcher(runner, [(0, b"GET /a"), (1, b"GET /b")], pools, recorder)
    before = time.monotonic_ns()
    dispatcher.dispatch(7 * MS)
    dispatcher.dispatch(8 * MS)
    assert (first.written, second.written, retired.written) == ([b"GET /a"], [b"GET /b"], [])
    assert (first.planned_ns, second.planned_ns) == (7 * MS, 8 * MS)
    assert first.busy and second.busy
    assert before <= first.sent_ns <= second.sent_ns <= time.monotonic_ns()
    assert pools[1].idle == []  # the retired one is dropped, not put back
    assert (dispatcher.dispatched, recorder.sent) == (2, 2)

    # No free connection left: the third send (the first target again) waits for one.
    dispatcher.dispatch(9 * MS)
    assert runner.waiting == [(pools[0], 9 * MS, b"GET /a")]
    assert (dispatcher.dispatched, recorder.sent) == (3, 2)


def test_a_send_to_an_origin_with_head_targets_tells_its_parser_which_request_it_is() -> None:
    class Heads:
        head = False

    conn = _Sent()
    conn._heads = heads = Heads()
    conn.send(b"HEAD / HTTP/1.1\r\n\r\n", 1, 2)
    assert heads.head
    conn.send(b"GET / HTTP/1.1\r\n\r\n", 3, 4)
    assert not heads.head
    assert (conn.planned_ns, conn.sent_ns, len(conn.written)) == (3, 4, 2)


def test_a_dispatcher_needs_a_target() -> None:
    with pytest.raises(ValueError, match="at least one target"):
        hot_path.OpenLoopDispatcher(_WaitingRunner(), [], [], IntervalRecorder(worker_id="w", capacity=8))
