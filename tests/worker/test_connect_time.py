"""Connection set-up kept apart from the schedule lag, against a raw server of our own that closes
the connection after every response (tests/support/framing_server.py, case `connection-close`), in
both loop models: every connection the engine opened is counted with its set-up time, and waiting
for a connection's set-up is not charged to the generator's lag."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from tests.support.framing_server import start_framing_server
from tests.support.http_servers import ServerHandle

from .helpers import closed_plan, measure, open_plan

pytestmark = pytest.mark.timeout(60)

#: Connections the open loop opens ahead of its start (and may keep spare), beyond one per response.
SPARE_CONNECTIONS = 8


@pytest.fixture(scope="module")
def server() -> Iterator[ServerHandle]:
    handle = start_framing_server()
    yield handle
    handle.stop()


@pytest.mark.parametrize("loop", ["open", "closed"])
def test_every_connection_set_up_is_counted_and_kept_out_of_the_lag(server: ServerHandle, loop: str) -> None:
    path = f"/connection-close/{loop}-{uuid.uuid4().hex[:8]}"
    url = f"http://127.0.0.1:{server.port}{path}"
    plan = open_plan(url, 200.0, 1.0, timeout_s=2.0) if loop == "open" else closed_plan(url, 2, 1.0, timeout_s=2.0)
    measured = measure(plan)
    answered = server.counters()["answered"][path]
    connects = sum(record.connects for record in measured.records)
    connect_us_total = sum(record.connect_us_total for record in measured.records)
    connect_us_max = max(record.connect_us_max for record in measured.records)

    assert measured.errors == {} and measured.completed == answered > 0
    # One connection per response, as the server chose (plus the open loop's spare ones, never used).
    assert answered <= connects <= answered + (SPARE_CONNECTIONS if loop == "open" else 0)
    assert connect_us_total > 0 and 0 < connect_us_max <= connect_us_total
    # Each connection's set-up is in its request's latency (corrected and uncorrected alike) ...
    assert measured.uncorrected.total_count == measured.completed
    if loop == "closed":
        # ... and a closed-loop client waits for nothing else: its lag is the loop's own turn (a few
        # microseconds), far below the connect every request of it needed (charged to the lag, the
        # median lag would be a connect's).
        connect_mean_us = connect_us_total / connects
        assert measured.lag.value_at_percentile(50) < connect_mean_us / 2
