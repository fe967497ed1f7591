"""Standalone runs: several worker processes from one start instant, merged into one result."""

from __future__ import annotations

import pytest

from meshload.errors import RunError
from meshload.results.interval import IntervalRecord
from meshload.worker.standalone import collect_records, run_standalone

from .helpers import open_plan


def test_two_worker_processes_split_the_schedule_and_merge_exactly(http_server) -> None:
    server = http_server("ok")
    plan = open_plan(server.url, 1_000, 1.0, warmup_s=0.5)
    result = run_standalone(plan, workers=2)

    assert server.counters()["requests"] == 1_500
    assert {w.id for w in result.workers} == {"standalone-0", "standalone-1"}
    assert result.completed + result.warmup_completed == 1_500
    assert result.completed == pytest.approx(1_000, abs=4)  # boundary sends may fall either side
    assert sum(w.requests for w in result.workers) == result.completed
    assert all(w.cpu_seconds > 0 and not w.lost for w in result.workers)
    assert result.corrected.total_count == result.completed
    assert result.errors == {}


def test_records_carry_both_workers_and_end_with_final(http_server) -> None:
    server = http_server("ok")
    records, outcomes = collect_records(open_plan(server.url, 400, 1.0), workers=2, run_id="r1")
    by_worker: dict[str, list[IntervalRecord]] = {}
    for record in records:
        by_worker.setdefault(record.worker_id, []).append(record)
    assert sorted(by_worker) == ["standalone-0", "standalone-1"]
    for worker_records in by_worker.values():
        assert [r.seq for r in worker_records] == list(range(len(worker_records)))
        assert worker_records[-1].final and not any(r.final for r in worker_records[:-1])
        assert all(r.run_id == "r1" for r in worker_records)
    assert sum(o.completed for o in outcomes) == 400 == server.counters()["requests"]


def test_zero_workers_is_a_user_error() -> None:
    with pytest.raises(RunError, match="at least 1"):
        collect_records(open_plan("http://127.0.0.1:1/", 1, 1.0), workers=0)
