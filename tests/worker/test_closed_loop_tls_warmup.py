"""Closed loop, HTTPS, and warm-up records."""

from __future__ import annotations

import pytest
from tests.support.http_servers import OK_RESPONSE, start_server

from .helpers import closed_plan, measure, open_plan


def test_closed_loop_counts_and_one_connection_per_client(http_server) -> None:
    server = http_server("ok")
    run = measure(closed_plan(server.url, 4, 1.0))

    counters = server.counters()
    assert run.sent == run.completed == counters["requests"] > 500
    assert counters["connections"] == 4
    assert run.errors == {} and run.missed == 0
    # Closed loop: the next request leaves at once, so there is no schedule lag to speak of.
    assert run.lag.value_at_percentile(50) <= 100


def test_closed_loop_think_time_paces_each_client(http_server) -> None:
    server = http_server("ok")
    run = measure(closed_plan(server.url, 2, 1.0, think_time_s=0.05))
    # 2 clients x (1 s / (50 ms think + a fraction of a ms)) = at most 40 requests.
    assert 30 <= run.completed <= 41
    assert run.completed == server.counters()["requests"]


@pytest.fixture
def tls_server(self_signed_cert):
    cert, key = self_signed_cert
    server = start_server("ok", tls_cert=cert, tls_key=key)
    yield server
    server.stop()


def test_https_without_verification_against_a_self_signed_server(tls_server) -> None:
    assert tls_server.url.startswith("https://")
    run = measure(open_plan(tls_server.url, 200, 1.0, tls_verify=False))
    assert run.status_codes == {"200": 200} and run.errors == {}
    assert tls_server.counters()["requests"] == 200
    assert run.bytes_received == 200 * len(OK_RESPONSE)  # HTTP bytes, not TLS records


def test_https_with_verification_refuses_a_self_signed_server(tls_server) -> None:
    run = measure(open_plan(tls_server.url, 50, 0.5, tls_verify=True))
    assert run.errors == {"tls_error": 25}
    assert run.completed == 0 and tls_server.counters()["requests"] == 0


def test_warmup_records_are_flagged_and_cut_at_the_boundary(http_server) -> None:
    server = http_server("ok")
    run = measure(open_plan(server.url, 400, 1.0, warmup_s=0.5), interval_s=1.0)

    spans = [(r.offset_s, round(r.duration_s, 3), r.warmup) for r in run.records]
    assert spans[0] == (0.0, 0.5, True)
    assert spans[1] == (0.5, 0.5, False)
    assert spans[2][0] == 1.0 and spans[2][2] is False and run.records[2].final
    assert [r.seq for r in run.records] == [0, 1, 2]
    # 0.5 s of 400 rps; a send due at the very boundary may land on either side of the cut.
    assert abs(run.records[0].sent - 200) <= 2
    assert run.completed == 600 == server.counters()["requests"]
