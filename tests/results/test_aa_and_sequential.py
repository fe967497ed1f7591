"""A/A calibration of a study's cells, the half-width stopping rule, and `--target-halfwidth`."""

from __future__ import annotations

import numpy as np
import pytest

from meshload.errors import UsageError
from meshload.results.aa_calibration import _subsets, calibrate_aa
from meshload.results.compare import compare_study_paired
from meshload.results.halfwidth_targets import HalfWidthTarget, parse_halfwidth_targets
from meshload.results.method_calibration import Effect, measure_sequential_coverage
from meshload.results.resolution import blocks_for_half_width
from meshload.results.sequential import (
    MIN_BLOCKS_BEFORE_STOP,
    decide_more_blocks,
    prefix_intervals,
    stopping_blocks,
)
from meshload.results.synthetic_study import MODEL_PROFILES, synthetic_cells

LEVELS = {50.0: MODEL_PROFILES["50rps"], 200.0: MODEL_PROFILES["200rps"]}


def test_aa_calibration_of_many_synthetic_aa_studies_is_nominal() -> None:
    # 30 A/A studies of 12 blocks at two load levels, 7 metrics each: 420 comparisons, and sub-studies
    # of 6 blocks for the coverage. The truth is 0 everywhere.
    false_positives = comparisons = covered = drawn = 0
    for seed in range(30):
        cells = synthetic_cells({"sidecar": 0.0, "sidecar-again": 0.0}, blocks=12, models=LEVELS, seed=seed)
        result = calibrate_aa(cells, "sidecar", "sidecar-again", seed=seed)
        assert result.sub_study_blocks == 6 and result.false_positives.total == 14
        false_positives += result.false_positives.count
        comparisons += result.false_positives.total
        covered += result.coverage.count
        drawn += result.coverage.total
        assert result.coverage.low <= result.coverage.rate <= result.coverage.high
        assert result.false_positives.low <= result.false_positives.rate <= result.false_positives.high
    assert false_positives / comparisons == pytest.approx(0.05, abs=0.025)
    assert covered / drawn == pytest.approx(0.95, abs=0.02)


def test_aa_calibration_flags_arms_that_are_not_the_same() -> None:
    # The "A/A" arms differ by 0.5 ms (say, one kept a debug log on): most comparisons are called
    # and the intervals rarely hold 0, which is what the calibration is there to show.
    cells = synthetic_cells({"sidecar": 0.0, "sidecar-again": 0.5}, blocks=12, models=LEVELS, seed=3)
    result = calibrate_aa(cells, "sidecar", "sidecar-again", sub_study_blocks=4)
    assert result.false_positives.rate > 0.3
    assert result.coverage.rate < 0.7
    assert result.sub_study_blocks == 4
    # Every subset of 4 of 12 blocks is 495: more than the cap, so 200 distinct ones are sampled.
    assert {item.sub_studies for item in result.by_metric} == {200}
    # The coverage's own interval counts only disjoint sub-studies (3 per metric and level).
    assert result.coverage.high - result.coverage.low > 0.1
    with pytest.raises(ValueError, match="at least 2 blocks"):
        calibrate_aa(cells, "sidecar", "sidecar-again", sub_study_blocks=1)


def test_sub_studies_are_all_subsets_or_distinct_samples() -> None:
    every = _subsets(6, 3, 200, np.random.default_rng(0))
    assert every.shape == (20, 3) and len({tuple(row) for row in every}) == 20
    sampled = _subsets(30, 5, 50, np.random.default_rng(0))
    assert sampled.shape == (50, 5) and len({tuple(row) for row in sampled}) == 50
    assert np.all(np.diff(sampled, axis=1) > 0)


def test_the_half_width_rule_keeps_coverage_close_to_nominal_and_stopping_on_significance_does_not() -> None:
    targets = {"p50_ms": 0.2, "p99_ms": 1.5}
    figures = measure_sequential_coverage(
        MODEL_PROFILES["50rps"], targets=targets, effect=Effect(), studies=1500, max_blocks=20, seed=1
    )
    for figure in figures:
        assert figure.mean_blocks > MIN_BLOCKS_BEFORE_STOP and figure.reached > 0.95
        # Within 2.5 points of 95%, and a zero effect called at about 5%.
        assert figure.coverage == pytest.approx(0.95, abs=0.025), figure
        assert figure.called < 0.075
    # The same studies stopped at the first look where the interval excludes 0 (from 3 blocks on):
    # the zero effect is "found" several times as often as 5%.
    rng = np.random.default_rng(1)
    differences = rng.normal(0.0, 0.3, (2000, 30))
    excludes = prefix_intervals(differences).excludes_zero()[:, 2:]
    assert excludes.any(axis=1).mean() > 0.2


def test_stopping_blocks_is_the_first_look_within_every_target() -> None:
    differences = np.zeros((2, 2, 12))
    rng = np.random.default_rng(0)
    differences[0] = rng.normal(0.0, 1.0, (2, 12))
    differences[1, 0] = rng.normal(0.0, 1.0, 12)  # metric 1 of study 1: no spread, always within
    stop = stopping_blocks(differences, np.array([0.9, 0.9]), min_blocks=3)
    half = prefix_intervals(differences).half_width
    for study in range(2):
        within = np.all(half[study] <= 0.9, axis=0)
        within[:2] = False
        expected = int(np.argmax(within)) + 1 if within.any() else 12
        assert stop[study] == expected


def _comparisons(blocks: int, seed: int = 0) -> list:
    cells = synthetic_cells({"none": 0.0, "sidecar": 0.5}, blocks=blocks, models=LEVELS, seed=seed)
    return compare_study_paired(cells, {"none": None, "sidecar": "none"})


def test_decide_more_blocks_adds_stops_and_says_why() -> None:
    comparisons = _comparisons(MIN_BLOCKS_BEFORE_STOP)
    p50 = [c for c in comparisons if c.metric == "p50_ms"]
    widest = max(p50, key=lambda c: c.half_width)
    loose = HalfWidthTarget("p50_ms", widest.half_width * 1.01, "p50=loose")
    tight = HalfWidthTarget("p50_ms", 0.05, "p50=0.05ms")
    done = decide_more_blocks(comparisons, [loose], blocks_done=MIN_BLOCKS_BEFORE_STOP, round_s=60, remaining_s=600)
    assert not done.add_blocks and "every target reached" in done.reason and done.rounds_affordable == 10
    assert done.rounds_to_targets == 0 and not done.unreached
    going = decide_more_blocks(comparisons, [tight], blocks_done=MIN_BLOCKS_BEFORE_STOP, round_s=60, remaining_s=600)
    assert going.add_blocks and "p50=0.05ms" in going.reason and "sidecar" in going.reason
    status = going.targets[0]
    assert status.widest_half_width == widest.half_width and status.widest_rate == widest.rate
    # The estimate: the blocks the slowest-to-reach comparison needs at its present spread.
    estimates = [blocks_for_half_width(c.sd_blocks, 0.05) for c in p50 if c.sd_blocks is not None]
    assert len(estimates) == len(p50) and None not in estimates
    needed = max(n for n in estimates if n is not None)
    assert status.blocks_needed == needed and going.rounds_to_targets == needed - MIN_BLOCKS_BEFORE_STOP
    spent = decide_more_blocks(comparisons, [tight], blocks_done=MIN_BLOCKS_BEFORE_STOP, round_s=60, remaining_s=59)
    assert not spent.add_blocks and spent.reason.startswith("time budget spent; not reached: p50=0.05ms")
    assert [s.target for s in spent.unreached] == [tight]
    # Below the minimum a reached target does not stop the study, unless time is out.
    early = _comparisons(3)
    assert decide_more_blocks(early, [loose], blocks_done=3, round_s=60, remaining_s=600).add_blocks
    assert not decide_more_blocks(early, [loose], blocks_done=3, round_s=60, remaining_s=30).add_blocks
    # A metric with no interval yet is not reached.
    none_yet = decide_more_blocks([], [loose], blocks_done=0, round_s=60, remaining_s=600)
    assert none_yet.add_blocks and none_yet.targets[0].widest_half_width is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("p50=0.05ms,p99=0.5ms", [("p50_ms", 0.05), ("p99_ms", 0.5)]),
        (" p90 = 50us , p99.9=1.5ms ", [("p90_ms", 0.05), ("p99.9_ms", 1.5)]),
        ("p50=50µs", [("p50_ms", 0.05)]),
        (
            "cpu=20,errors=0.1%,memory=2MB",
            [("proxy_cpu_mcores_per_krps", 20.0), ("error_rate_pct", 0.1), ("proxy_mem_mb", 2.0)],
        ),
        ("proxy_cpu_mcores_per_krps=15mcores,p99_ms=1ms", [("proxy_cpu_mcores_per_krps", 15.0), ("p99_ms", 1.0)]),
    ],
)
def test_target_halfwidth_parses_metrics_and_units(text: str, expected: list[tuple[str, float]]) -> None:
    targets = parse_halfwidth_targets(text)
    assert [(t.metric, t.half_width) for t in targets] == [(m, pytest.approx(v)) for m, v in expected]
    assert [t.written for t in targets] == [part.strip() for part in text.split(",")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("p50=0.05", '"p50=0.05" needs a unit; write e.g. p50=0.05ms or p50=0.05us'),
        ("p42=1ms", '"p42" is not a compared metric; use one of p50, p90'),
        ("p50", '"p50" is not metric=value'),
        ("p50=1ms,p50=2ms", "p50_ms is given twice"),
        ("p50=0ms", '"p50=0ms" must be above 0'),
        ("p50=fast", '"p50=fast" is not a duration'),
        ("cpu=5ms", '"cpu=5ms" must be a number in mcores'),
        ("", "no target given"),
        ("p50=1ms,,p99=1ms", "an empty entry"),
    ],
)
def test_target_halfwidth_errors_are_one_clear_line(text: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_halfwidth_targets(text)
    line = str(caught.value)
    assert line.startswith("--target-halfwidth: ") and message in line and "\n" not in line


def test_aa_calibration_leaves_out_metrics_that_never_varied() -> None:
    cells = synthetic_cells({"sidecar": 0.0, "sidecar-again": 0.0}, blocks=8, models=LEVELS, seed=4)
    for cell in cells:
        cell.metrics["error_rate_pct"] = 0.0  # no error anywhere: every block difference is 0
    result = calibrate_aa(cells, "sidecar", "sidecar-again")
    assert "error_rate_pct" not in {item.metric for item in result.by_metric}
    assert result.false_positives.total == 2 * 6  # 6 metrics of 7 at each of 2 load levels
    assert {c.metric for c in result.comparisons} >= {"error_rate_pct"}  # still compared and reported
