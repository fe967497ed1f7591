"""The regression mark on made-up histories whose answer is known.

Each history is a plan's runs: every run's figure is the system's level, plus drift between runs
(`between_sd`, on the log scale), plus the run's own measurement noise (`run_sd`, which its interval
states). Pure noise must be marked at about the nominal false-alarm rate (at most); a step must be
marked where it starts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from meshload.history.records import HistoryRecord
from meshload.history.trend import RegressionRule, assess_history, check_against_baseline
from meshload.results.headline import Z_95, Estimate

LEVEL_MS = 5.0


def _history(
    rng: np.random.Generator,
    runs: int,
    *,
    metrics: Sequence[str] = ("p99_ms",),
    between_sd: float = 0.05,
    run_sd: tuple[float, float] = (0.01, 0.08),
    step_at: int | None = None,
    step: float = 1.0,
    invalid: Sequence[int] = (),
) -> list[HistoryRecord]:
    records = []
    for index in range(runs):
        figures = {}
        for metric in metrics:
            own_sd = 0.0 if metric == "proxy_cpu_mcores" else float(rng.uniform(*run_sd))
            level = math.log(LEVEL_MS) + rng.normal(0.0, between_sd) + rng.normal(0.0, own_sd)
            if step_at is not None and index >= step_at:
                level += math.log(step)
            value = math.exp(level)
            if own_sd:
                figures[metric] = Estimate(value, value * math.exp(-Z_95 * own_sd), value * math.exp(Z_95 * own_sd))
            else:
                figures[metric] = Estimate(value)
        records.append(
            HistoryRecord(
                key=f"run-{index}",
                kind="run",
                plan_name="nightly",
                plan={},
                plan_digest="same-plan",
                started_unix_ms=index,
                figures=figures,
                valid=index not in invalid,
            )
        )
    return records


def _false_alarms(rng: np.random.Generator, histories: int, **options: Any) -> tuple[int, int]:
    marked = judged = 0
    for _ in range(histories):
        for point in assess_history(_history(rng, 30, **options)):
            if point.checks:
                judged += 1
                marked += point.marked
    return marked, judged


@pytest.mark.parametrize("between_sd", [0.0, 0.05, 0.2])
def test_noise_alone_is_marked_at_most_at_about_the_nominal_rate(between_sd: float) -> None:
    """One metric, 250 histories of 30 runs (6,250 judged runs): the rate of marks is at most 1%
    (within 3 binomial standard errors) and not absurdly below it."""
    marked, judged = _false_alarms(np.random.default_rng(100), 250, between_sd=between_sd)
    rate, nominal = marked / judged, RegressionRule().false_alarm_rate
    standard_error = math.sqrt(nominal * (1 - nominal) / judged)
    print(f"between-run sd {between_sd}: {marked}/{judged} = {rate:.4f} marked")
    assert judged == 250 * 25
    assert nominal / 5 < rate < nominal + 3 * standard_error


def test_a_run_of_pure_noise_is_marked_at_most_at_the_nominal_rate_whatever_metric_would_do_it() -> None:
    """Three metrics judged per run share the false-alarm rate (Bonferroni): the chance that any of
    them marks a run stays at about 1%, not 3%."""
    metrics = ("p50_ms", "p99_ms", "proxy_cpu_mcores")
    marked, judged = _false_alarms(np.random.default_rng(200), 160, metrics=metrics)
    rate, nominal = marked / judged, RegressionRule().false_alarm_rate
    print(f"three metrics: {marked}/{judged} = {rate:.4f} runs marked")
    assert rate < nominal + 3 * math.sqrt(nominal * (1 - nominal) / judged)
    assert marked > 0


def test_a_step_is_marked_where_it_starts_and_an_improvement_never() -> None:
    rng = np.random.default_rng(300)
    detected, earlier_marks, improvements_marked = 0, 0, 0
    trials = 200
    for _ in range(trials):
        points = assess_history(_history(rng, 21, step_at=20, step=1.5))
        detected += points[20].marked and points[20].worse_metrics() == ["p99_ms"]
        earlier_marks += sum(point.marked for point in points[:20])
        better = assess_history(_history(rng, 21, step_at=20, step=1 / 1.5))
        improvements_marked += better[20].marked
    print(f"+50% step marked in {detected}/{trials} histories; {earlier_marks} marks before it")
    assert detected >= 0.97 * trials
    assert earlier_marks <= 0.01 * 15 * trials + 3 * math.sqrt(0.01 * 15 * trials)
    assert improvements_marked == 0


def test_the_marked_run_reports_its_baseline_threshold_and_p_value() -> None:
    points = assess_history(_history(np.random.default_rng(1), 12, step_at=11, step=2.0))
    check = points[11].checks["p99_ms"]
    assert check.worse and check.baseline_runs == 10
    value = points[11].record.figure("p99_ms")
    assert value is not None and check.threshold < value
    assert check.baseline_mean == pytest.approx(LEVEL_MS, rel=0.1)
    assert LEVEL_MS < check.threshold < 2 * LEVEL_MS
    assert check.p_value < check.alpha


def test_runs_without_enough_history_invalid_runs_and_plan_changes() -> None:
    records = _history(np.random.default_rng(4), 14, invalid=[6])
    records[6].figures["p99_ms"] = Estimate(100 * LEVEL_MS)  # an invalid run's figure is the generator's
    for record in records[9:]:
        record.plan_digest = "another-plan"
    points = assess_history(records)

    assert [bool(point.checks) for point in points] == [False] * 5 + [True, False, True, True] + [False] * 5
    assert points[0].note == "0 earlier valid runs of this plan; 5 needed"
    assert points[6].note.startswith("invalid run") and not points[6].marked
    assert points[7].checks["p99_ms"].baseline_runs == 6  # run 6 is left out of the baseline
    assert not any(point.marked for point in points)
    assert points[9].note == "plan changed: a new baseline starts here"
    assert points[13].note == "4 earlier valid runs of this plan; 5 needed"


def test_a_noisy_run_is_not_marked_for_its_own_noise_but_a_precise_one_is() -> None:
    baseline = [math.log(LEVEL_MS) + offset for offset in (-0.01, 0.0, 0.01, 0.0, -0.005, 0.005, 0.0, 0.01)]
    baseline_sd = [0.01] * len(baseline)
    shifted = math.log(LEVEL_MS * 1.15)
    precise = check_against_baseline(shifted, 0.01, baseline, baseline_sd, alpha=0.01, scale="log")
    noisy = check_against_baseline(shifted, 0.2, baseline, baseline_sd, alpha=0.01, scale="log")
    assert precise.worse
    assert not noisy.worse and noisy.threshold > LEVEL_MS * 1.15


def test_errors_appearing_after_clean_runs_are_marked_on_the_error_rate() -> None:
    records = _history(np.random.default_rng(9), 8, metrics=("p50_ms",))
    for index, record in enumerate(records):
        failures = 40 if index == 7 else 0
        rate = 100 * failures / 2000
        spread = 100 * 1.96 * math.sqrt(max(failures, 1) / 2000**2)
        record.figures["error_rate_pct"] = Estimate(rate, max(rate - spread, 0.0), rate + spread)
    points = assess_history(records)
    assert points[7].worse_metrics() == ["error_rate_pct"]
    assert not any(point.marked for point in points[:7])
