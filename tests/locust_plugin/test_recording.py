"""The plugin's recording, in this process without Locust (importing Locust would monkey-patch the test
process): per-name records, the open-loop pacer and its split across workers, Locust request events
in greenlets, the error kinds of real client exceptions, and what the merged result and its reports
say about names and Locust's own figures."""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from types import SimpleNamespace

import gevent
import numpy as np
import requests

from meshload.results.aggregate import RunAggregator
from meshload.results.histogram import LatencyHistogram
from meshload.results.outputs import load_run_result, write_run_outputs
from meshload.results.report_html import render_report
from meshload.results.run_result import ReferenceFigures
from meshload.scenarios.plan import Plan
from meshload.scenarios.schedule import split_plan
from meshload.worker.locust_events import CLOSED_LOOP, LocustRequestRecorder, error_kind
from meshload.worker.named_recorder import OVERFLOW_NAME, NamedIntervalRecorder
from meshload.worker.task_pacer import IDLE_WAIT_S, PACER_ATTRIBUTE, TASK_ATTRIBUTE, TaskPacer

MS = 1_000_000  # ns


def decoded(blob: str) -> LatencyHistogram:
    return LatencyHistogram.decode(blob) if blob else LatencyHistogram()


def test_named_records_split_the_responses_by_name_and_add_up_to_the_totals() -> None:
    recorder = NamedIntervalRecorder(worker_id="w", run_id="r", capacity=64, max_names=3)
    rng = np.random.default_rng(7)
    names = ["a", "b", "c", "d", "e"]  # d and e are beyond max_names: recorded together
    expected: dict[str, list[int]] = {}
    base = time.monotonic_ns()
    for i in range(500):  # folds every 64 responses, several times
        name = names[i % 5]
        latency_us = int(rng.integers(100, 50_000))
        lag_us = int(rng.integers(0, 3_000))
        planned = base + i * MS
        sent = planned + lag_us * 1000
        recorder.record_named_response(recorder.name_id(name), planned, sent, sent + latency_us * 1000, 200 + (i % 2))
        key = name if name in "abc" else OVERFLOW_NAME
        expected.setdefault(key, []).append(latency_us + lag_us)
    recorder.record_named_error(recorder.name_id("a"), "reset", base, base)
    recorder.count_failure(recorder.name_id("a"))
    recorder.count_failure(recorder.name_id("e"))
    recorder.sent += 501

    record = recorder.cut(offset_s=0.0, duration_s=1.0, start_unix_ms=1)
    assert set(record.names) == {"a", "b", "c", OVERFLOW_NAME}
    assert record.completed == 500 and record.errors == {"reset": 1}
    assert record.names["a"].errors == 1 and record.names["a"].failures == 1
    assert record.names[OVERFLOW_NAME].failures == 1 and record.names[OVERFLOW_NAME].completed == 200
    merged = LatencyHistogram()
    for name, part in record.names.items():
        corrected = decoded(part.latency_corrected)
        assert part.completed == corrected.total_count == len(expected[name])
        # Each name's histogram holds exactly its own latencies.
        own = LatencyHistogram()
        own.record_batch(np.asarray(expected[name], dtype=np.int64))
        assert np.array_equal(corrected.counts_array(), own.counts_array())
        assert decoded(part.latency_uncorrected).total_count == part.completed
        merged.add(corrected)
    total = decoded(record.latency_corrected)
    assert merged.total_count == total.total_count == 500
    assert np.array_equal(merged.counts_array(), total.counts_array())

    following = recorder.cut(offset_s=1.0, duration_s=1.0, start_unix_ms=2)
    assert following.names == {} and following.completed == 0  # per-name figures start afresh too


def claims(pacer: TaskPacer, count: int) -> list[int]:
    """The next `count` instants the pacer hands out (fewer if it has no more)."""
    instants = [pacer.claim_ns() for _ in range(count)]
    return [instant for instant in instants if instant is not None]


def test_pacers_of_two_workers_share_out_exactly_the_schedule_of_one() -> None:
    start_ns = time.monotonic_ns()
    one = TaskPacer(200.0)
    one.begin(index=0, count=1, start_ns=start_ns, seed=3)
    whole = claims(one, 400)
    workers = [TaskPacer(200.0), TaskPacer(200.0)]
    for index, pacer in enumerate(workers):
        pacer.begin(index=index, count=2, start_ns=start_ns, seed=3)
    halves = [claims(pacer, 200) for pacer in workers]
    assert len(whole) == 400 and all(len(half) == 200 for half in halves)
    assert sorted(halves[0] + halves[1]) == whole
    assert whole == sorted(whole) and whole[1] - whole[0] == 5 * MS  # evenly spaced at 200/s, in order
    # The same instants as the schedule meshload's own workers are given for that rate.
    plan = Plan.model_validate(
        {"targets": [{"url": "http://x/"}], "load": {"kind": "open", "rate": 200}, "duration_s": 2}
    )
    assert [start_ns + int(t) for t in split_plan(plan, 1)[0].schedule().take_until(2.0)] == whole

    # Stopping at 2.5 s: worker 0 took its 200 instants of the first 2 s; its 50 of the next 0.5 s are missed.
    assert workers[0].end(start_ns + 2_500 * MS) == 50
    assert not workers[0].active
    # A user with no instant to take stays idle in its wait (it runs no task outside the schedule).
    waiting = gevent.spawn(workers[0].wait_s, time.monotonic_ns())
    gevent.sleep(IDLE_WAIT_S * 1.5)
    assert not waiting.ready()
    waiting.kill()


def test_poisson_pacers_draw_the_total_rate_across_workers() -> None:
    pacers = [TaskPacer(500.0, "poisson") for _ in range(3)]
    for index, pacer in enumerate(pacers):
        pacer.begin(index=index, count=3, start_ns=0, seed=11)
    counts = [pacer.end(20_000 * MS) for pacer in pacers]  # nothing taken: all of 20 s is unclaimed
    assert abs(sum(counts) - 10_000) < 4 * 10_000**0.5
    assert len(set(counts)) == 3  # independent streams


def _user(pacer: TaskPacer | None) -> SimpleNamespace:
    """A stand-in for a Locust User: what the recorder looks at is its wait time."""

    def wait_time(_user: object) -> float:
        assert pacer is not None
        return pacer.wait_s(time.monotonic_ns())

    if pacer is not None:
        setattr(wait_time, PACER_ATTRIBUTE, pacer)
    return SimpleNamespace(wait_time=wait_time if pacer is not None else (lambda: 1.0))


def _in_user_greenlet(user: SimpleNamespace, work) -> None:
    # Locust runs every user in a greenlet spawned with the user as its only argument.
    gevent.spawn(lambda _user: work(), user).get(timeout=5)


def test_closed_loop_requests_are_measured_from_their_send() -> None:
    recorder = NamedIntervalRecorder(worker_id="w")
    listener = LocustRequestRecorder(recorder).on_request
    ok = SimpleNamespace(status_code=200)

    def requests_of_a_user() -> None:
        for _ in range(5):
            listener(request_type="GET", name="/", response_time=2.5, response=ok, response_length=10)
        assert getattr(gevent.getcurrent(), TASK_ATTRIBUTE) is CLOSED_LOOP

    _in_user_greenlet(_user(None), requests_of_a_user)
    record = recorder.cut(offset_s=0, duration_s=1, start_unix_ms=0)
    assert record.completed == record.sent == 5 and record.bytes_received == 50
    corrected, uncorrected = decoded(record.latency_corrected), decoded(record.latency_uncorrected)
    assert corrected.value_at_percentile(100) == uncorrected.value_at_percentile(100)
    assert 2_490 <= uncorrected.value_at_percentile(50) <= 2_510
    assert decoded(record.schedule_lag).value_at_percentile(100) == 0 and record.late == 0


def test_open_loop_requests_are_measured_from_their_tasks_planned_instant() -> None:
    """The pacer's schedule began 50 ms ago at 1,000 tasks/s: the user's first task takes the instant
    at 0 (50 ms overdue) and both its requests carry that lag; its next task takes the instant at 1 ms."""
    pacer = TaskPacer(1_000.0)
    pacer.begin(index=0, count=1, start_ns=time.monotonic_ns() - 50 * MS)
    user = _user(pacer)
    recorder = NamedIntervalRecorder(worker_id="w")
    listener = LocustRequestRecorder(recorder).on_request
    ok = SimpleNamespace(status_code=200)
    lags: list[int] = []

    def one_user() -> None:
        listener(name="first", response_time=1.0, response=ok)  # Locust ran the first task without a wait
        listener(name="second", response_time=1.0, response=ok)
        lags.append(getattr(gevent.getcurrent(), TASK_ATTRIBUTE)[1])
        assert user.wait_time(user) == 0.0  # the next instant is overdue too: no sleep
        listener(name="first", response_time=1.0, response=ok)
        lags.append(getattr(gevent.getcurrent(), TASK_ATTRIBUTE)[1])

    _in_user_greenlet(user, one_user)
    assert pacer.claimed == 2
    assert all(45 * MS < lag < 90 * MS for lag in lags)
    record = recorder.cut(offset_s=0, duration_s=1, start_unix_ms=0)
    lag = decoded(record.schedule_lag)
    assert lag.total_count == 3 and lag.min_us >= 45_000
    for name in ("first", "second"):
        part = record.names[name]
        corrected, uncorrected = decoded(part.latency_corrected), decoded(part.latency_uncorrected)
        assert 990 <= uncorrected.value_at_percentile(100) <= 1_010
        assert corrected.value_at_percentile(0) > 46_000  # the task's lag is added to each request
    assert record.late == 3  # each far beyond the late threshold


def test_a_first_task_ahead_of_the_schedule_takes_no_instant_and_is_measured_from_its_send() -> None:
    """Locust starts a user's first task at once; when the schedule has not begun yet (it starts a lead
    after the test), that task runs outside it: lag 0, nothing taken, nothing missed later."""
    pacer = TaskPacer(1_000.0)
    pacer.begin(index=0, count=1, start_ns=time.monotonic_ns() + 500 * MS)
    recorder = NamedIntervalRecorder(worker_id="w")
    listener = LocustRequestRecorder(recorder).on_request
    ok = SimpleNamespace(status_code=200)

    def one_user() -> None:
        listener(name="early", response_time=3.0, response=ok)
        listener(name="early", response_time=3.0, response=ok)
        assert getattr(gevent.getcurrent(), TASK_ATTRIBUTE)[1] == 0

    _in_user_greenlet(_user(pacer), one_user)
    assert pacer.claimed == 0
    record = recorder.cut(offset_s=0, duration_s=1, start_unix_ms=0)
    corrected, uncorrected = decoded(record.latency_corrected), decoded(record.latency_uncorrected)
    assert np.array_equal(corrected.counts_array(), uncorrected.counts_array()) and record.late == 0


def _raised(function) -> BaseException:
    try:
        function()
    except BaseException as exc:  # noqa: BLE001 - the exception is what is looked at
        return exc
    raise AssertionError("no exception")


def test_client_exceptions_map_to_error_kinds(refused_url: str) -> None:
    port = int(refused_url.rsplit(":", 1)[1].strip("/"))
    assert error_kind(_raised(lambda: socket.create_connection(("127.0.0.1", port), timeout=2))) == "connect_refused"
    assert error_kind(_raised(lambda: requests.get(refused_url, timeout=2))) == "connect_refused"
    assert error_kind(requests.exceptions.ConnectTimeout("connect timed out")) == "connect_timeout"
    assert error_kind(TimeoutError("timed out")) == "timeout"
    assert error_kind(ssl.SSLError("handshake failure")) == "tls_error"
    assert error_kind(http.client.RemoteDisconnected("closed")) == "reset"
    assert error_kind(http.client.BadStatusLine("nonsense")) == "malformed"
    assert error_kind(ValueError("a bad check in a locustfile")) == "other"
    assert error_kind(None) == "other"


def test_failed_requests_count_as_errors_by_kind_and_failures_by_name(refused_url: str) -> None:
    recorder = NamedIntervalRecorder(worker_id="w")
    listener = LocustRequestRecorder(recorder).on_request
    refused = _raised(lambda: requests.get(refused_url, timeout=2))

    def requests_of_a_user() -> None:
        listener(name="down", response_time=0.3, response=SimpleNamespace(status_code=0), exception=refused)
        listener(name="page", response_time=1.0, response=SimpleNamespace(status_code=503), exception=RuntimeError())
        # Status 200 but the locustfile's check failed: a response, and a failure by Locust's verdict.
        listener(name="page", response_time=1.0, response=SimpleNamespace(status_code=200), exception=ValueError())
        listener(name="custom", response_time=4.0, exception=ValueError("no response object at all"))

    _in_user_greenlet(_user(None), requests_of_a_user)
    record = recorder.cut(offset_s=0, duration_s=1, start_unix_ms=0)
    assert record.errors == {"connect_refused": 1, "other": 1}
    assert record.status_codes == {"200": 1, "503": 1} and record.completed == 2
    assert record.sent == 3  # the refused connection never carried the request
    assert (record.names["down"].errors, record.names["down"].failures) == (1, 1)
    assert (record.names["page"].completed, record.names["page"].failures) == (2, 2)


def test_names_and_locusts_own_figures_reach_the_result_the_files_and_the_report(tmp_path) -> None:
    plan = Plan.model_validate(
        {"targets": [{"url": "http://127.0.0.1:9/"}], "load": {"kind": "closed", "concurrency": 8}, "duration_s": 2}
    )
    aggregator = RunAggregator(plan, "run-test")
    recorder = NamedIntervalRecorder(worker_id="locust-0", run_id="run-test")
    now = time.monotonic_ns()
    for second in range(2):
        for i in range(300):
            name = "GET /a" if i % 3 else "GET /b"
            recorder.record_named_response(recorder.name_id(name), now, now, now + (1 + i % 7) * MS, 200)
        recorder.sent += 300
        aggregator.add(recorder.cut(offset_s=second, duration_s=1.0, start_unix_ms=1_760_000_000_000 + 1000 * second))
    result = aggregator.result()
    assert set(result.by_name) == {"GET /a", "GET /b"}
    assert result.by_name["GET /a"].completed == 400 and result.by_name["GET /b"].completed == 200
    assert sum(s.corrected.total_count for s in result.by_name.values()) == result.corrected.total_count == 600
    result.reference = ReferenceFigures(
        source="Locust 2.47.0 own statistics", requests=600, failures=0, percentiles_ms={"50": 4.0, "99": 7.0}
    )

    write_run_outputs(result, tmp_path)
    rebuilt = load_run_result(tmp_path)
    assert rebuilt.reference == result.reference
    assert {name: s.completed for name, s in rebuilt.by_name.items()} == {"GET /a": 400, "GET /b": 200}
    assert rebuilt.by_name["GET /b"].corrected.value_at_percentile(99) == result.by_name[
        "GET /b"
    ].corrected.value_at_percentile(99)
    page = render_report(rebuilt)
    assert 'id="names"' in page and "GET /a" in page
    assert 'id="reference"' in page and "Locust 2.47.0 own statistics" in page
    assert "Closed loop: 8 clients" in page and "not corrected for coordinated omission" in page
