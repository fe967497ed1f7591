"""The gRPC engine against real grpcio servers: counts, statuses by name, deadlines, transport errors
by kind, coordinated-omission correction, channels, TLS, proto files and server reflection."""

from __future__ import annotations

import pytest
from tests.support.grpc_servers import SERVICE
from tests.support.http_servers import refused_port

from meshload.errors import PlanError
from meshload.results.fortio import fortio_document
from meshload.results.report_html import render_report
from meshload.results.smp import CLIENT_PROTOCOL_GRPC, smp_document
from meshload.scenarios.plan import Plan
from meshload.worker.engines import auto
from meshload.worker.engines.grpc_reflection import with_reflected_descriptors
from meshload.worker.standalone import run_standalone

from .helpers import assert_stall_percentiles, measure


def grpc_plan(url: str, method: str, load: dict, duration_s: float, **options: object) -> Plan:
    return Plan(targets=[{"url": f"{url}{SERVICE}/{method}"}], load=load, duration_s=duration_s, **options)


def test_unary_calls_are_counted_as_the_server_counts_them_and_statuses_by_name(grpc_server, loadtest_schema) -> None:
    server = grpc_server("status", statuses="OK,OK,OK,NOT_FOUND")
    plan = grpc_plan(server.url, "Unary", {"kind": "open", "rate": 200}, 1.0, grpc=loadtest_schema, body='{"id": 7}')
    assert auto.registration_for(plan).name == "grpc" and plan.max_connections == 1
    run = measure(plan)

    counters = server.counters()
    assert run.outcome.attempted == run.sent == run.completed == counters["calls"] == 200
    assert run.status_codes == {"OK": 150, "NOT_FOUND": 50} == counters["statuses"]
    assert run.errors == {} and run.missed == 0
    assert run.corrected.total_count == run.uncorrected.total_count == run.lag.total_count == 200
    assert run.bytes_received == 150 * len(b"\n\nreply to 7")  # the OK replies' messages
    assert len(counters["peers"]) == 1  # one channel: one HTTP/2 connection


def test_statuses_reach_the_smp_fortio_and_html_reports(grpc_server, loadtest_schema) -> None:
    server = grpc_server("status", statuses="OK,UNAVAILABLE")
    result = run_standalone(grpc_plan(server.url, "Unary", {"kind": "open", "rate": 100}, 1.0, grpc=loadtest_schema))
    assert result.status_codes == {"OK": 50, "UNAVAILABLE": 50}
    assert result.errors == {}  # a status the server sent is a response, not a transport error
    smp = smp_document(result)
    assert smp["config"]["clients"][0]["protocol"] == CLIENT_PROTOCOL_GRPC
    assert smp["config"]["clients"][0]["connections"] == 1
    assert smp["meshload"]["status_codes"] == {"OK": 50, "UNAVAILABLE": 50}
    assert smp["meshload"]["protocol"] == "grpc"
    fortio = fortio_document(result)
    assert fortio["RunType"] == "GRPC" and fortio["RetCodes"] == {"OK": 50, "UNAVAILABLE": 50}
    assert fortio["SocketCount"] == 1
    page = render_report(result)
    assert "gRPC UNAVAILABLE</td><td>50" in page and "statuses other than OK" in page


def test_server_streaming_closed_loop_over_three_channels(grpc_server, loadtest_schema) -> None:
    server = grpc_server("ok")
    plan = grpc_plan(
        server.url,
        "Stream",
        {"kind": "closed", "concurrency": 6},
        1.0,
        grpc=loadtest_schema,
        body='{"count": 4}',
        max_connections=3,
    )
    run = measure(plan)

    counters = server.counters()
    assert run.sent == run.completed == counters["calls"] > 50
    assert counters["stream_replies"] == 4 * counters["calls"]
    assert run.status_codes == {"OK": run.completed} and run.errors == {}
    assert run.bytes_received == run.completed * sum(len(f"\n\x07reply {i}") for i in range(4))
    assert len(counters["peers"]) == 3 == run.outcome.connections_opened


def test_stalls_show_in_corrected_latency_as_derived(grpc_server, loadtest_schema) -> None:
    """The HTTP engine's derivation (tests/worker/test_open_loop.py): a server that holds every call
    for S = 0.2 s every P = 1 s, under a constant rate, gives corrected percentiles
    x_q = S - (1 - q)·P (p90 = 100 ms, p95 = 150 ms, p99 = 190 ms), while the uncorrected ones stay
    near the fast answer time except for the calls sent during a stall. gRPC multiplexes: every call
    held in a stall waits at the server, on the one connection, and is answered when it ends."""
    stall_s, period_s = 0.2, 1.0
    server = grpc_server("stall", stall_period_s=period_s, stall_s=stall_s)
    # 100 calls/s: the 20 calls held in each stall are what grpcio's Python server answers at once
    # without adding milliseconds of its own to the truth.
    run = measure(grpc_plan(server.url, "Unary", {"kind": "open", "rate": 100}, 3.0, grpc=loadtest_schema))

    assert run.completed == 300 == server.counters()["calls"] and run.errors == {}
    assert_stall_percentiles(run, stall_s, period_s)
    # Every held call was in flight at the server, not waiting in the engine: most were sent on
    # time, so the uncorrected latency shows the stall too (unlike HTTP/1.1 on 4 connections).
    assert run.lag.value_at_percentile(90) < 10_000
    assert run.uncorrected.value_at_percentile(95) > 100_000


def test_the_request_timeout_is_the_deadline(grpc_server, loadtest_schema) -> None:
    server = grpc_server("slow", delay_s=0.4)
    run = measure(
        grpc_plan(server.url, "Unary", {"kind": "open", "rate": 40}, 0.5, grpc=loadtest_schema, timeout_s=0.1)
    )
    assert run.status_codes == {"DEADLINE_EXCEEDED": 20} and run.errors == {}
    # The call took its deadline to fail: that is its latency.
    assert 100_000 <= run.uncorrected.value_at_percentile(50) < 160_000


def test_transport_failures_are_counted_by_kind(http_server, loadtest_schema) -> None:
    refused = measure(
        grpc_plan(
            f"grpc://127.0.0.1:{refused_port()}/", "Unary", {"kind": "open", "rate": 50}, 0.5, grpc=loadtest_schema
        )
    )
    assert refused.errors == {"connect_refused": 25} and refused.completed == 0
    reset_server = http_server("reset")  # accepts, reads the HTTP/2 preface, answers with RST
    reset = measure(
        grpc_plan(
            f"grpc://127.0.0.1:{reset_server.port}/", "Unary", {"kind": "open", "rate": 50}, 0.5, grpc=loadtest_schema
        )
    )
    assert reset.errors == {"reset": 25} and reset.completed == 0


def test_methods_described_by_server_reflection(grpc_server, loadtest_schema) -> None:
    server = grpc_server("ok", reflection=True)
    plan = grpc_plan(server.url, "Stream", {"kind": "open", "rate": 50}, 0.5, body='{"count": 2}')
    assert plan.grpc.uses_reflection and not plan.grpc.descriptor_set
    described = with_reflected_descriptors(plan)
    assert described.grpc.descriptor_set
    # The engine asks by itself when given an undescribed plan (a worker handed one directly).
    run = measure(plan)
    assert run.status_codes == {"OK": 25} and server.counters()["stream_replies"] == 50

    with pytest.raises(PlanError, match="has no method 'Nope'; its methods are: Stream, Unary, Upload"):
        with_reflected_descriptors(grpc_plan(server.url, "Nope", {"kind": "open", "rate": 1}, 1.0))
    with pytest.raises(PlanError, match=r"does not fit meshload\.test\.EchoRequest"):
        with_reflected_descriptors(grpc_plan(server.url, "Unary", {"kind": "open", "rate": 1}, 1.0, body='{"x": 1}'))
    without = grpc_server("ok")
    with pytest.raises(PlanError, match=r"server reflection failed .*UNIMPLEMENTED.*give --proto FILE"):
        with_reflected_descriptors(grpc_plan(without.url, "Unary", {"kind": "open", "rate": 1}, 1.0))


@pytest.fixture
def tls_grpc_server(grpc_server, self_signed_cert):
    cert, key = self_signed_cert
    return grpc_server("ok", tls_cert=cert, tls_key=key)


def test_tls_with_and_without_verification(tls_grpc_server, self_signed_cert, loadtest_schema) -> None:
    assert tls_grpc_server.url.startswith("grpcs://")
    load = {"kind": "open", "rate": 50}
    insecure = measure(grpc_plan(tls_grpc_server.url, "Unary", load, 0.5, grpc=loadtest_schema, tls_verify=False))
    assert insecure.status_codes == {"OK": 25} and insecure.errors == {}
    refused = measure(grpc_plan(tls_grpc_server.url, "Unary", load, 0.5, grpc=loadtest_schema))
    assert refused.errors == {"tls_error": 25} and refused.completed == 0
    trusted = measure(
        grpc_plan(
            tls_grpc_server.url, "Unary", load, 0.5, grpc=loadtest_schema, tls_ca_pem=self_signed_cert[0].read_text()
        )
    )
    assert trusted.status_codes == {"OK": 25}
    assert tls_grpc_server.counters()["calls"] == 50


def test_closed_loop_think_time_paces_each_client(grpc_server, loadtest_schema) -> None:
    server = grpc_server("ok")
    load = {"kind": "closed", "concurrency": 2, "think_time_s": 0.05}
    run = measure(grpc_plan(server.url, "Unary", load, 1.0, grpc=loadtest_schema))
    # 2 clients x (1 s / (50 ms think + a call of a millisecond or two)) = at most 40 calls.
    assert 30 <= run.completed <= 41
    assert run.completed == server.counters()["calls"]
