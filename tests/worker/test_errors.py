"""No error stops the engine: each request ends in a response or in an error of one counted kind."""

from __future__ import annotations

import pytest
from tests.support.http_servers import CLOSE_RESPONSE, MALFORMED_RESPONSE

from .helpers import closed_plan, measure, open_plan


@pytest.mark.parametrize(
    ("server_kind", "error_kind"),
    [("malformed", "malformed"), ("reset", "reset")],
)
def test_broken_servers_are_counted_by_kind_and_the_run_completes(http_server, server_kind, error_kind) -> None:
    server = http_server(server_kind)
    run = measure(open_plan(server.url, 200, 1.0))

    assert run.outcome.attempted == 200
    assert run.completed == 0 and run.status_codes == {}
    assert run.errors == {error_kind: 200}
    # Each request was written and reached the server before it failed.
    assert run.sent == 200 == server.counters()["requests"]
    # Errors stay out of the latency histograms; their schedule lag is still measured.
    assert run.corrected.total_count == 0 and run.uncorrected.total_count == 0
    assert run.lag.total_count == 200
    assert run.records[-1].final
    if server_kind == "malformed":  # what arrived is still counted, though it was not HTTP
        assert run.bytes_received == 200 * len(MALFORMED_RESPONSE)


def test_a_refused_port_counts_every_planned_request_as_refused(refused_url) -> None:
    run = measure(open_plan(refused_url, 200, 1.0))
    assert run.errors == {"connect_refused": 200}
    assert run.sent == 0 and run.completed == 0 and run.missed == 0


def test_requests_that_outlive_the_timeout_count_as_timeouts(http_server) -> None:
    """Stalls of 0.6 s every 1 s, timeout 0.2 s: requests caught in a stall time out, the rest answer."""
    server = http_server("stall", stall_period_s=1.0, stall_s=0.6)
    run = measure(open_plan(server.url, 100, 2.0, timeout_s=0.2, max_connections=8))

    timeouts = run.errors.get("timeout", 0)
    assert run.completed + sum(run.errors.values()) == 200
    assert set(run.errors) <= {"timeout", "not_sent"}
    assert timeouts > 0 and run.completed > 0
    # Nothing that answered took much longer than the timeout (plus the sweep period).
    assert run.uncorrected.max_us < 400_000


def test_closed_loop_clients_survive_resets(http_server) -> None:
    server = http_server("reset")
    run = measure(closed_plan(server.url, 2, 0.5))
    assert run.completed == 0
    assert run.errors["reset"] == run.sent == server.counters()["requests"] > 10


@pytest.mark.parametrize("loop_model", ["open", "closed"])
def test_connection_close_answers_count_and_the_connection_is_replaced(http_server, loop_model) -> None:
    server = http_server("close")
    plan = open_plan(server.url, 200, 1.0) if loop_model == "open" else closed_plan(server.url, 2, 0.5)
    run = measure(plan)
    counters = server.counters()
    assert run.errors == {} and run.completed == run.sent == counters["requests"] > 50
    assert run.status_codes == {"200": run.completed}
    # Exact: the kernel counts each server FIN as a byte, and the engine takes it off.
    assert run.bytes_received == run.completed * len(CLOSE_RESPONSE)
    # One connection per request: none was reused after the server said "close".
    assert counters["connections"] >= counters["requests"]
