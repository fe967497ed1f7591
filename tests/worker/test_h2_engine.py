"""The HTTP/2 engine against real servers: nginx over TLS (h2 by ALPN) and h2c, counted in nginx's
access log; our own h2 server for the most streams per connection and for stalls."""

from __future__ import annotations

import time

import pytest
from tests.support.h2_servers import NginxH2, start_h2_server

from meshload.scenarios.schedule import WorkerShare
from meshload.worker.admission import share_connections
from meshload.worker.engines import auto

from .helpers import assert_stall_percentiles, closed_plan, measure, open_plan


@pytest.fixture(scope="module")
def nginx(tmp_path_factory, self_signed_cert):
    cert, key = self_signed_cert
    server = NginxH2(tmp_path_factory.mktemp("nginx-h2"), cert, key)
    yield server
    server.stop()


def _settled_log(nginx: NginxH2, requests: int):
    """nginx writes each line as its request ends: wait (briefly) until all are there."""
    deadline = time.monotonic() + 5
    log = nginx.log()
    while log.requests < requests and time.monotonic() < deadline:
        time.sleep(0.05)
        log = nginx.log()
    return log


@pytest.mark.parametrize("scheme", ["h2c", "https"])
def test_open_loop_counts_equal_nginx_and_use_exactly_the_connections_asked(nginx, scheme) -> None:
    url = nginx.h2c_url if scheme == "h2c" else nginx.https_url
    before = nginx.log()
    plan = open_plan(url, 400, 1.0, http2=True, max_connections=2, tls_verify=False)
    assert auto.registration_for(plan).name == "h2"
    run = measure(plan)

    assert run.outcome.attempted == run.sent == run.completed == 400
    assert run.status_codes == {"200": 400} and run.errors == {} and run.missed == 0
    log = _settled_log(nginx, before.requests + 400)
    assert log.requests - before.requests == 400
    assert log.protocols.get("HTTP/2.0", 0) - before.protocols.get("HTTP/2.0", 0) == 400
    assert log.connections - before.connections == 2 == run.outcome.connections_opened
    assert run.corrected.total_count == run.uncorrected.total_count == 400


def test_closed_loop_and_statuses_over_h2c(nginx) -> None:
    before = nginx.log()
    run = measure(closed_plan(nginx.h2c_url + "missing", 8, 1.0, http2=True))
    log = _settled_log(nginx, before.requests + run.completed)
    assert run.completed > 100 and run.sent == run.completed
    assert run.status_codes == {"404": run.completed}
    assert log.requests - before.requests == run.completed
    assert log.connections - before.connections == 1  # the default: one connection, 8 streams on it


def test_goaway_after_nginx_keepalive_requests_moves_to_new_connections(tmp_path, self_signed_cert) -> None:
    """nginx ends a connection with GOAWAY after 100 requests: the engine opens another; a request
    sent after the GOAWAY left nginx, which it never processes, is a "reset", never a lost count."""
    nginx = NginxH2(tmp_path, *self_signed_cert, keepalive_requests=100)
    try:
        run = measure(open_plan(nginx.h2c_url, 400, 1.0, http2=True))
        log = _settled_log(nginx, run.completed)
    finally:
        nginx.stop()
    assert run.completed + run.errors.get("reset", 0) == 400 and set(run.errors) <= {"reset"}
    assert log.requests == run.completed and log.statuses == {"200": run.completed}
    assert log.connections >= 4 and run.outcome.connections_opened >= log.connections


def test_a_server_without_http2_is_counted_not_crashed_on(nginx) -> None:
    # An HTTP/1.1-only port answers the h2c preface with an HTTP/1.1 error: not HTTP/2.
    run = measure(open_plan(nginx.http1_url, 50, 0.5, http2=True))
    assert run.completed == 0
    assert sum(run.errors.values()) == 25 and set(run.errors) <= {"malformed", "reset"}


def test_streams_per_connection_are_honoured_ours_and_the_servers() -> None:
    """A stalling server holds every request for 0.3 s; at 400 rps over 1 connection that is ~120
    requests at once, so the limit is what bounds the streams the server sees."""
    server = start_h2_server("stall", max_streams=100, stall_period_s=1.0, stall_s=0.3)
    try:
        run = measure(open_plan(server.url, 400, 1.0, http2=True, max_streams_per_connection=10))
        assert run.completed == 400 and run.errors == {}
        counters = server.counters()
        assert counters["connections"] == 1 and counters["requests"] == 400
        assert counters["max_streams_seen"] == 10
    finally:
        server.stop()
    server = start_h2_server("stall", max_streams=6, stall_period_s=1.0, stall_s=0.3)
    try:
        run = measure(open_plan(server.url, 400, 1.0, http2=True, max_streams_per_connection=50))
        assert run.completed == 400 and run.errors == {}
        assert server.counters()["max_streams_seen"] == 6
    finally:
        server.stop()


def test_request_bodies_respect_the_servers_flow_control_windows() -> None:
    """40 KiB bodies: more than one DATA frame each, and two of them exceed the connection's default
    64 KiB window, so they go out only as the server reopens its windows."""
    server = start_h2_server("ok")
    body = "x" * 40_960
    try:
        run = measure(open_plan(server.url, 100, 1.0, http2=True, method="POST", body=body))
        counters = server.counters()
    finally:
        server.stop()
    assert run.status_codes == {"200": 100} and run.errors == {}
    assert counters["requests"] == 100 and counters["body_bytes"] == 100 * len(body)


def test_stalls_show_in_corrected_latency_as_derived() -> None:
    """The HTTP/1.1 engine's derivation (tests/worker/test_open_loop.py): a server that answers
    nothing for S = 0.2 s every P = 1 s gives corrected percentiles x_q = S - (1 - q)·P."""
    stall_s, period_s = 0.2, 1.0
    server = start_h2_server("stall", stall_period_s=period_s, stall_s=stall_s)
    try:
        # Every request held in a stall (20 at 100 rps) fits on the connection's streams, so it waits
        # at the server and is answered the moment the stall ends (h2 is pure Python on both sides:
        # a small backlog keeps their own milliseconds out of the truth).
        run = measure(open_plan(server.url, 100, 3.0, http2=True, timeout_s=5.0))
    finally:
        server.stop()
    assert run.completed == 300 and run.errors == {}
    assert_stall_percentiles(run, stall_s, period_s)
    # Every held request was in flight at the server, not waiting in the engine: sent on time, so the
    # uncorrected latency shows the stall too (unlike HTTP/1.1 on 4 connections).
    assert run.lag.value_at_percentile(90) < 10_000
    assert run.uncorrected.value_at_percentile(95) > 100_000


def test_a_worker_counts_the_multiplexed_connections_it_will_open() -> None:
    """What a fleet worker's --max-connections ceiling compares: HTTP/2 opens N connections per origin
    in either loop, however many clients share them (HTTP/1.1 closed loop: one per client)."""
    h2 = closed_plan("http://127.0.0.1:1/", 64, 1.0, http2=True, max_connections=2)
    assert share_connections(WorkerShare(h2)) == 2
    assert share_connections(WorkerShare(closed_plan("http://127.0.0.1:1/", 64, 1.0))) == 64


def test_closed_loop_think_time_paces_each_client(nginx) -> None:
    before = nginx.log()
    run = measure(closed_plan(nginx.h2c_url, 2, 1.0, http2=True, think_time_s=0.05))
    # 2 clients x (1 s / (50 ms think + a fraction of a ms)) = at most 40 requests.
    assert 30 <= run.completed <= 41
    assert _settled_log(nginx, before.requests + run.completed).requests - before.requests == run.completed
