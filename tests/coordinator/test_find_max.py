"""The knee search against a server whose capacity is known (it answers at most K requests per
second, queueing the rest): the rate found lies within 10% of K, and the bracket holds it."""

from __future__ import annotations

import json

import pytest
from tests.support.http_servers import start_server

from meshload.coordinator.find_max import FIND_MAX_FILE, find_max
from meshload.coordinator.run import RunOptions
from meshload.errors import UsageError
from meshload.scenarios.plan import ClosedLoop, OpenLoop, Plan, Target
from meshload.scenarios.slo import Slo, parse_slo

pytestmark = pytest.mark.timeout(400)

CAPACITY_RPS = 300.0


def test_the_knee_of_a_server_of_known_capacity_is_found_within_ten_percent(tmp_path) -> None:
    server = start_server("capacity", capacity_rps=CAPACITY_RPS)
    try:
        plan = Plan(
            targets=(Target(url=server.url),), load=OpenLoop(rate=100.0), duration_s=3.0, warmup_s=1.0, timeout_s=5.0
        )
        options = RunOptions(workers=1, out_dir=tmp_path / "knee", live=False)
        knee = find_max(plan, options, parse_slo("p99<50ms", "<1%"), precision=0.05, repeats=3)
    finally:
        server.stop()
    assert knee.rate == pytest.approx(CAPACITY_RPS, rel=0.10), knee.steps
    low, high = knee.bracket
    assert low < high <= low * 1.05 + 1e-9
    # Every step's verdict is consistent with the bracket: what passed is at or below it, what failed above.
    assert all(step.rate <= low for step in knee.steps if step.passed)
    assert all(step.rate >= high for step in knee.steps if not step.passed and step.rate > low)
    written = json.loads((tmp_path / "knee" / FIND_MAX_FILE).read_text())
    assert written["rate"] == knee.rate
    assert len(written["steps"]) == len(knee.steps)
    assert (tmp_path / "knee" / "step-01-100rps" / "smp.json").is_file()


def test_slo_and_error_budget_are_parsed_or_refused_in_one_line() -> None:
    assert parse_slo("p99<50ms", "<0.1%") == Slo(99.0, 50.0, 0.001)
    assert parse_slo("p99.9 < 2s") == Slo(99.9, 2000.0, 0.0)
    assert parse_slo("p50<500us").latency_ms == pytest.approx(0.5)
    for bad in ("p99>50ms", "99<50ms", "p99<50", "p100<1ms"):
        with pytest.raises(UsageError, match=r"--slo: .* is not a latency objective"):
            parse_slo(bad)
    with pytest.raises(UsageError, match=r"--errors: .* is not an error budget"):
        parse_slo("p99<50ms", "0.1")


def test_a_closed_loop_plan_cannot_be_searched(tmp_path) -> None:
    plan = Plan(targets=(Target(url="http://127.0.0.1:9/"),), load=ClosedLoop(concurrency=2), duration_s=1.0)
    with pytest.raises(UsageError, match="--find-max: searches open-loop rates"):
        find_max(plan, RunOptions(workers=1, live=False), parse_slo("p99<50ms"))
