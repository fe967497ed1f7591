"""The one verdict: every rule of the self-check, alone, on an otherwise healthy run; its effect
(invalid or degraded) and its sentence. Every rule of `RULES` is covered, so a new one needs a case."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest

from meshload.results.aggregate import RunAggregator
from meshload.results.run_result import RunResult
from meshload.results.validity import (
    CLOCK_OFFSET_LIMIT_MS,
    COVERAGE_FRACTION_LIMIT,
    LAG_P99_LIMIT_MS,
    LATE_FRACTION_LIMIT,
    MISSED_FRACTION_LIMIT,
    RULES,
    WORKER_CPU_SATURATION,
    assess,
    judge,
)

from .conftest import RUN_ID, MakeRecord, histogram_of, make_plan


@pytest.fixture
def healthy(make_record: MakeRecord) -> RunResult:
    aggregator = RunAggregator(make_plan(), RUN_ID)
    for seq in range(5):
        for worker in ("worker-0", "worker-1"):
            aggregator.add(make_record(worker, seq, warmup=seq == 0, final=seq == 4))
    result = aggregator.result()
    assert result.valid and not result.degraded and result.validity == []
    return result


def _lost(result: RunResult) -> RunResult:
    workers = [dataclasses.replace(result.workers[0], lost=True), *result.workers[1:]]
    return dataclasses.replace(result, workers=workers)


def _saturated(result: RunResult) -> RunResult:
    busy = dataclasses.replace(result.workers[1], max_cpu_fraction=WORKER_CPU_SATURATION + 0.01)
    return dataclasses.replace(result, workers=[result.workers[0], busy])


def _returned(result: RunResult) -> RunResult:
    workers = [dataclasses.replace(result.workers[0], returned=True), *result.workers[1:]]
    return dataclasses.replace(result, workers=workers)


def _records_missing(result: RunResult) -> RunResult:
    workers = [dataclasses.replace(result.workers[0], missing_records=2), *result.workers[1:]]
    return dataclasses.replace(result, workers=workers, streams_lost=1)


def _target_failing(result: RunResult) -> RunResult:
    measured = [i for i, point in enumerate(result.timeseries) if not point.warmup]
    assert len(measured) > 1
    points = list(result.timeseries)
    last = points[measured[-1]]
    points[measured[-1]] = dataclasses.replace(last, errors=int(last.rate) + 10)
    return dataclasses.replace(result, timeseries=points, errors={"connect_refused": int(last.rate) + 10})


def _behind(result: RunResult) -> RunResult:
    lag_us = np.full(1000, int(2_000 * LAG_P99_LIMIT_MS))
    return dataclasses.replace(result, lag=histogram_of(lag_us))


CASES: dict[str, tuple[str, Callable[[RunResult], RunResult], str]] = {
    "nothing-measured": (
        "invalid",
        lambda r: dataclasses.replace(r, completed=0, errors={}),
        "no request completed in the measured part of the run",
    ),
    "fell-behind": ("invalid", _behind, f"send lag p99 20.0 ms is above {LAG_P99_LIMIT_MS:g} ms"),
    "never-sent": (
        "invalid",
        lambda r: dataclasses.replace(r, sent=900, missed=round(1000 * 2 * MISSED_FRACTION_LIMIT)),
        "2 of 902 planned requests were never sent",
    ),
    "sent-late": (
        "invalid",
        lambda r: dataclasses.replace(r, late=round(r.sent * 2 * LATE_FRACTION_LIMIT)),
        "requests were sent late",
    ),
    "cpu-saturated": ("invalid", _saturated, "1 worker(s) saturated their CPU (busiest: worker-1 at 91%"),
    "clocks-apart": (
        "invalid",
        lambda r: dataclasses.replace(r, max_clock_offset_ms=2 * CLOCK_OFFSET_LIMIT_MS),
        "a worker's clock is 100.0 ms away from the Redis server's",
    ),
    "clamped": ("invalid", lambda r: dataclasses.replace(r, clamped=3), "3 latencies were above the histogram's"),
    "short-coverage": (
        "invalid",
        lambda r: dataclasses.replace(r, measured_s=r.plan.duration_s * COVERAGE_FRACTION_LIMIT / 2),
        "the records cover 1.8 s of the planned 4 s",
    ),
    "stream-lost": ("invalid", _records_missing, "records not yet collected were lost (2 missing"),
    "stream-recovered": (
        "note",
        lambda r: dataclasses.replace(r, streams_lost=1),
        "but every worker's records arrived in full afterwards: nothing is missing",
    ),
    "interrupted": (
        "invalid",
        lambda r: dataclasses.replace(r, interrupted="SIGTERM", measured_s=1.0),
        "the run was interrupted (SIGTERM) after 1.0 s of the planned 4 s",
    ),
    "nothing-succeeded": (
        "invalid",
        lambda r: dataclasses.replace(r, status_codes={"503": r.completed - 1}, errors={"refused": 1}),
        "NOTHING SUCCEEDED: not one of the",
    ),
    "target-failed": ("invalid", _target_failing, "the target failed in 1 of"),
    "workers-returned": ("note", _returned, "1 worker(s) went silent for a while and came back (worker-0"),
    "unreadable-records": (
        "invalid",
        lambda r: dataclasses.replace(r, malformed_records=2),
        "2 records could not be read",
    ),
    "workers-lost": ("degraded", _lost, "1 of 2 worker(s) lost during the run (worker-0)"),
    "log-incomplete": (
        "degraded",
        lambda r: dataclasses.replace(r, records_dropped=4),
        "the interval log holds only part of the run: 4 records were not kept",
    ),
}


def test_every_rule_has_a_case_and_rule_names_are_unique() -> None:
    names = [rule.name for rule in RULES]
    assert len(names) == len(set(names))
    assert sorted(names) == sorted(CASES)


@pytest.mark.parametrize("rule", sorted(CASES))
def test_each_rule_alone_decides_its_effect_with_its_sentence(healthy: RunResult, rule: str) -> None:
    effect, broken, sentence = CASES[rule]
    result = broken(healthy)
    verdict = assess(result)
    assert [(f.rule, f.effect) for f in verdict.findings] == [(rule, effect)]
    assert sentence in verdict.reasons[0] and "\n" not in verdict.reasons[0]
    assert verdict.valid is (effect != "invalid")
    assert verdict.degraded is (effect == "degraded")
    judge(result)
    assert (result.valid, result.degraded, result.validity) == (verdict.valid, verdict.degraded, verdict.reasons)


def test_a_run_that_only_dropped_records_is_valid_but_degraded(healthy: RunResult) -> None:
    result = dataclasses.replace(healthy, records_dropped=1)
    judge(result)
    assert result.valid and result.degraded


def test_invalid_reasons_come_before_degraded_ones(healthy: RunResult) -> None:
    result = dataclasses.replace(_lost(healthy), clamped=1, records_dropped=2)
    verdict = assess(result)
    assert [f.rule for f in verdict.findings] == ["clamped", "workers-lost", "log-incomplete"]
    assert not verdict.valid and verdict.degraded


def test_the_coordinators_pipeline_losses_reach_the_verdict(make_record: MakeRecord) -> None:
    aggregator = RunAggregator(make_plan(), RUN_ID)
    for seq in (0, 1, 3, 4):  # seq 2 went with the stream
        aggregator.add(make_record("worker-0", seq, warmup=seq == 0, final=seq == 4))
    result = aggregator.result(streams_lost=1, malformed_records=3)
    assert not result.valid
    assert [reason.split(" ")[0] for reason in result.validity] == ["Redis", "3"]
    assert [(r.cause, r.effect) for r in result.reasons] == [
        ("stream-lost", "invalid"),
        ("unreadable-records", "invalid"),
    ]


def test_a_stream_lost_after_every_record_arrived_is_a_note_not_a_verdict(make_record: MakeRecord) -> None:
    aggregator = RunAggregator(make_plan(), RUN_ID)
    for seq in range(5):
        aggregator.add(make_record("worker-0", seq, warmup=seq == 0, final=seq == 4))
    result = aggregator.result(streams_lost=1)
    assert result.valid and not result.degraded
    assert [r.cause for r in result.reasons] == ["stream-recovered"]


def test_lag_and_late_sends_beside_the_seconds_the_target_failed_in_are_not_the_generators(
    healthy: RunResult,
) -> None:
    failing = _target_failing(healthy)
    measured = [i for i, point in enumerate(failing.timeseries) if not point.warmup]
    points = list(failing.timeseries)
    for i in measured[-2:]:  # the failing second and the one before it
        points[i] = dataclasses.replace(points[i], lag_p99_ms=5 * LAG_P99_LIMIT_MS, late=points[i].late + 50)
    result = dataclasses.replace(_behind(failing), timeseries=points, late=sum(p.late for p in points if not p.warmup))
    assert result.late / result.sent > LATE_FRACTION_LIMIT
    assert [f.rule for f in assess(result).findings] == ["target-failed"]
    # The same lag with no failing second beside it is the generator's.
    points[measured[-1]] = dataclasses.replace(points[measured[-1]], errors=0)
    alone = dataclasses.replace(result, timeseries=points, errors={})
    assert [f.rule for f in assess(alone).findings] == ["fell-behind", "sent-late"]
