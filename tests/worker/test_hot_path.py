"""The compiled response path: its clock is Python's, and its buffers refuse what they cannot hold."""

from __future__ import annotations

import time

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
