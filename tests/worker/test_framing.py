"""Every response framing RFC 9112 allows, and RFC 9110's interim responses, against a raw server of our
own (tests/support/framing_server.py), in both loop models: each response counted once with its final
status, no error, and exactly as many as the server answered. Responses cut short are errors."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from tests.support.framing_server import CASES, start_framing_server
from tests.support.http_servers import ServerHandle

from meshload.scenarios.plan import Plan

from .helpers import closed_plan, measure, open_plan

pytestmark = pytest.mark.timeout(60)

COMPLETE = [name for name, case in CASES.items() if case.status]
TRUNCATED = [name for name, case in CASES.items() if not case.status]
OPEN_RATE = 80.0
DURATION_S = 0.4
#: Connections opened ahead of the start (open loop), plus a margin: what keep-alive cases may use.
KEPT_ALIVE_CONNECTIONS = 6


@pytest.fixture(scope="module")
def server() -> Iterator[ServerHandle]:
    handle = start_framing_server()
    yield handle
    handle.stop()


def _plan(server: ServerHandle, case: str, loop: str) -> tuple[Plan, str]:
    # A path of its own per test, so the server's counts are this test's alone.
    url = f"http://127.0.0.1:{server.port}/{case}/{loop}-{uuid.uuid4().hex[:8]}"
    method = "HEAD" if case.startswith("head") else "GET"
    if loop == "open":
        return open_plan(url, OPEN_RATE, DURATION_S, method=method, timeout_s=2.0), url
    return closed_plan(url, 2, DURATION_S, method=method, timeout_s=2.0), url


@pytest.mark.parametrize("loop", ["open", "closed"])
@pytest.mark.parametrize("case", COMPLETE)
def test_each_framing_is_one_response_with_its_final_status(server: ServerHandle, case: str, loop: str) -> None:
    plan, url = _plan(server, case, loop)
    measured = measure(plan)
    path = url.split(str(server.port), 1)[1]
    counters = server.counters()
    answered = counters["answered"][path]

    assert measured.errors == {}, CASES[case].description
    assert measured.status_codes == {str(CASES[case].status): measured.completed}
    assert measured.completed == measured.sent == answered == counters["requests"][path] > 0
    assert measured.corrected.total_count == measured.completed
    if loop == "open":
        assert measured.completed == round(OPEN_RATE * DURATION_S)
    if CASES[case].close:
        assert counters["connections"][path] == answered  # one connection per response, as the server chose
    else:
        # Kept alive: connections are reused (a few more than the pre-opened ones on a busy machine).
        assert counters["connections"][path] <= max(KEPT_ALIVE_CONNECTIONS, answered // 4)


@pytest.mark.parametrize("loop", ["open", "closed"])
@pytest.mark.parametrize("case", TRUNCATED)
def test_a_response_cut_short_by_the_close_is_an_error(server: ServerHandle, case: str, loop: str) -> None:
    plan, url = _plan(server, case, loop)
    measured = measure(plan)
    path = url.split(str(server.port), 1)[1]
    requests = server.counters()["requests"][path]

    assert measured.completed == 0 and measured.status_codes == {}, CASES[case].description
    assert measured.errors == {"reset": requests} and requests == measured.sent > 0


def test_a_target_that_closes_every_connection_does_not_make_the_generator_late(server: ServerHandle) -> None:
    def lag_p50_and_connect_ms(case: str) -> tuple[float, float]:
        url = f"http://127.0.0.1:{server.port}/{case}/lag-{uuid.uuid4().hex[:8]}"
        measured = measure(open_plan(url, 400.0, 1.0))
        assert measured.completed == measured.sent == 400 and not measured.errors
        connects = sum(record.connects for record in measured.records)
        connect_us = sum(record.connect_us_total for record in measured.records)
        return measured.lag.value_at_percentile(50) / 1000.0, connect_us / max(connects, 1) / 1000.0

    # A connection is ready before each send is due, as with keep-alive; were each send to wait for
    # its connect, the median lag would grow by a whole connect, as this run measured its connects
    # (0.25 to 0.4 ms on a quiet machine, three times that on a slow one). The median, not the tail: a
    # machine shared with other work makes the tail of both runs noisy alike.
    kept_alive_ms, _ = lag_p50_and_connect_ms("content-length")
    closing_ms, connect_ms = lag_p50_and_connect_ms("connection-close")
    assert closing_ms < kept_alive_ms + max(0.15, connect_ms / 2), (closing_ms, kept_alive_ms, connect_ms)
