"""The open-loop engine against real servers: counts, rate, coordinated-omission correction."""

from __future__ import annotations

import pytest
from tests.support.http_servers import OK_RESPONSE

from meshload.scenarios.plan import Plan
from meshload.scenarios.schedule import split_plan

from .helpers import measure, open_plan


def test_counts_at_the_server_equal_the_engines_and_the_rate_is_held(http_server) -> None:
    server = http_server("ok")
    rate, duration_s = 2_000, 3.0
    run = measure(open_plan(server.url, rate, duration_s))

    planned = round(rate * duration_s)
    assert run.outcome.attempted == planned
    assert run.sent == run.completed == planned
    assert server.counters()["requests"] == planned
    assert run.errors == {} and run.missed == 0
    assert run.status_codes == {"200": planned}
    assert run.bytes_received == planned * len(OK_RESPONSE)
    assert run.corrected.total_count == run.uncorrected.total_count == run.lag.total_count == planned
    # Every full one-second interval sent its share within 1% (the last record also holds the drain).
    full_intervals = [r for r in run.records if not r.final]
    assert len(full_intervals) == 2
    for record in full_intervals:
        assert record.sent == pytest.approx(rate * record.duration_s, rel=0.01)
    # Keep-alive: connections are reused, far fewer than requests.
    assert server.counters()["connections"] <= 64
    # Corrected latency can only exceed the uncorrected one (it adds the schedule lag).
    assert run.corrected.value_at_percentile(50) >= run.uncorrected.value_at_percentile(50)
    assert run.outcome.cpu_seconds > 0


def test_requests_are_spread_over_targets_by_weight(http_server) -> None:
    heavy, light = http_server("ok"), http_server("ok")
    plan = open_plan([heavy.url, light.url], 1_000, 1.0)
    plan = plan.model_copy(
        update={
            "targets": (
                plan.targets[0].model_copy(update={"weight": 3.0}),
                plan.targets[1],
            )
        }
    )
    run = measure(plan)
    heavy_count, light_count = heavy.counters()["requests"], light.counters()["requests"]
    assert heavy_count + light_count == run.completed == 1_000
    assert heavy_count / light_count == pytest.approx(3.0, rel=0.15)


def test_stalls_show_in_corrected_latency_as_derived_and_not_in_uncorrected(http_server) -> None:
    """A server that stops answering for S = 0.2 s every P = 1 s, under a constant R = 1,000 rps.

    Derivation. The planned instants are evenly spaced, so their phase within the period is
    uniform. A request planned φ seconds into a stall (0 ≤ φ < S) cannot complete before the stall
    ends: it waits either at the server (sent on one of the 4 allowed connections) or in the
    engine's queue for a free connection, and its corrected latency (from the planned instant) is
    S − φ (plus a millisecond or so of backlog drain). Requests planned outside a stall take about
    0.1 ms. Hence, for 0 < x < S, P(latency > x) = (S − x) / P, and the percentile q is

        x_q = S − (1 − q)·P:   p90 = 100 ms,  p95 = 150 ms,  p99 = 190 ms.

    The run lasts 3 whole periods, so whatever its phase it covers 3·S of stall time. Uncorrected
    latency (from the actual send) is long only for the ≤ 4 requests per stall sent before it
    started answering again (0.4% of requests): its p90 and p99 stay near the fast answer time.
    """
    stall_s, period_s = 0.2, 1.0
    server = http_server("stall", stall_period_s=period_s, stall_s=stall_s)
    run = measure(open_plan(server.url, 1_000, 3.0, max_connections=4, timeout_s=5.0))

    assert run.completed == 3_000 and run.errors == {}
    for percentile in (90, 95, 99):
        expected_ms = (stall_s - (1 - percentile / 100) * period_s) * 1000
        measured_ms = run.corrected.value_at_percentile(percentile) / 1000
        assert measured_ms == pytest.approx(expected_ms, rel=0.15), f"p{percentile}"
    corrected_p99_us = run.corrected.value_at_percentile(99)
    assert run.uncorrected.value_at_percentile(99) < corrected_p99_us / 10
    assert run.uncorrected.value_at_percentile(90) < run.corrected.value_at_percentile(90) / 10
    # The few requests caught at the server during a stall do show in the uncorrected maximum.
    assert run.uncorrected.max_us > 100_000


@pytest.mark.parametrize(
    "load",
    [
        {"kind": "open", "rate": 600, "arrival": "poisson"},
        {"kind": "open", "rate": 200, "stages": [{"duration_s": 1.0, "rate": 1000}]},
    ],
    ids=["poisson", "ramp"],
)
def test_every_planned_instant_of_other_arrival_processes_is_sent_once(http_server, load) -> None:
    server = http_server("ok")
    plan = Plan(targets=[{"url": server.url}], load=load, duration_s=1.0, seed=11)
    # The same share's schedule, drawn independently of the engine.
    expected = len(split_plan(plan, 1)[0].schedule().take_until(plan.total_s + 1))
    run = measure(plan)
    assert run.outcome.attempted == run.sent == run.completed == expected == server.counters()["requests"]
    if "stages" in load:
        assert expected == 600  # (200 + 1000) / 2 rps over 1 s
    else:
        assert abs(expected - 600) < 4 * 600**0.5  # Poisson: within 4 standard deviations


def test_at_a_rate_beyond_sleeping_the_worker_polls_and_counts_the_polling_apart(http_server) -> None:
    # 25,000 rps plans a send every 40 us, nearer than a sleep is worth (pacing.SPIN_NS): the loop
    # polls for them, and the records say how much of the worker's CPU was that polling.
    server = http_server("ok")
    run = measure(open_plan(server.url, 25_000, 1.0))

    assert run.outcome.attempted == 25_000
    assert run.sent + run.missed == 25_000
    assert run.outcome.spin_seconds > 0
    assert sum(r.spin_seconds for r in run.records) == pytest.approx(run.outcome.spin_seconds, abs=1e-5)
    for record in run.records:
        assert 0 <= record.spin_seconds <= record.cpu_seconds
