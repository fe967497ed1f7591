"""Paired comparisons of a study's cells, block by block, and the resolution they come with."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from meshload.results.block_intervals import t_interval
from meshload.results.cell_summary import METRIC_BY_KEY
from meshload.results.compare import compare_study, compare_study_paired
from meshload.results.paired import PairedComparison, compare_paired, paired_blocks
from meshload.results.resolution import (
    blocks_for_half_width,
    detectable_change,
    detectable_change_with_power,
    detection_power,
    study_resolution,
)
from meshload.results.synthetic_study import MODEL_PROFILES, synthetic_cells

LEVELS = {50.0: MODEL_PROFILES["50rps"], 200.0: MODEL_PROFILES["200rps"]}
BASELINES = {"none": None, "sidecar": "none", "mtls": "sidecar"}


def _interval(comparison: PairedComparison) -> tuple[float, float]:
    assert comparison.low is not None and comparison.high is not None
    return comparison.low, comparison.high


def _detectable(comparison: PairedComparison) -> float:
    assert comparison.detectable_change is not None
    return comparison.detectable_change


def _detectable_80(comparison: PairedComparison) -> float:
    assert comparison.detectable_change_80 is not None
    return comparison.detectable_change_80


def _half_width(comparison: PairedComparison) -> float:
    assert comparison.half_width is not None
    return comparison.half_width


def test_paired_comparison_cancels_the_drift_between_blocks() -> None:
    # sidecar adds 0.5 ms to every request, mtls 0.1 ms more; CPU per 1,000 rps +50 and +10.
    cells = synthetic_cells({"none": 0.0, "sidecar": 0.5, "mtls": 0.6}, blocks=12, models=LEVELS, seed=5)
    paired = {(c.function, c.rate, c.metric): c for c in compare_study_paired(cells, BASELINES)}
    unpaired = {(c.function, c.rate, c.metric): c for c in compare_study(cells, BASELINES)}
    assert {key[0] for key in paired} == {"sidecar", "mtls"}
    for (function, _rate, metric), comparison in paired.items():
        assert comparison.baseline == BASELINES[function]
        assert comparison.n_blocks == 12 and comparison.repetitions == list(range(1, 13))
        assert comparison.low is not None and comparison.high is not None
        assert comparison.low <= comparison.change <= comparison.high
        # The resolution: the smallest change called significant is the half-width; the interval
        # rules out changes beyond its farther end; 80% power needs a larger change than 50%.
        assert comparison.detectable_change == pytest.approx(comparison.half_width)
        assert comparison.rules_out_beyond == pytest.approx(max(abs(comparison.low), abs(comparison.high)))
        assert comparison.detectable_change is not None and comparison.detectable_change_80 is not None
        assert comparison.detectable_change_80 > comparison.detectable_change
        assert comparison.change == pytest.approx(comparison.function_mean - comparison.baseline_mean)
        assert comparison.unit == METRIC_BY_KEY[metric].unit
    truth = {"sidecar": 0.5, "mtls": 0.1}
    for function, effect in truth.items():
        for rate in LEVELS:
            p50 = paired[function, rate, "p50_ms"]
            low, high = _interval(p50)
            assert low < effect < high
            cpu_low, cpu_high = _interval(paired[function, rate, "proxy_cpu_mcores_per_krps"])
            assert cpu_low < effect * 100 < cpu_high
            # Block drift (0.6 ms at 50 rps) cancels inside a block: the paired interval is the
            # narrower one, by a wide margin where the drift is large.
            p50_half_width = _half_width(p50)
            assert (
                p50_half_width < (unpaired[function, rate, "p50_ms"].high - unpaired[function, rate, "p50_ms"].low) / 2
            )
    assert paired["sidecar", 50.0, "p50_ms"].significant
    assert _half_width(paired["sidecar", 50.0, "p50_ms"]) < 0.6 * (
        (unpaired["sidecar", 50.0, "p50_ms"].high - unpaired["sidecar", 50.0, "p50_ms"].low) / 2
    )
    # The interval is the paired t interval of the recorded block differences.
    p99 = paired["mtls", 200.0, "p99_ms"]
    expected = stats.t.interval(0.95, 11, loc=np.mean(p99.differences), scale=stats.sem(p99.differences))
    assert (p99.low, p99.high) == pytest.approx(expected)


def test_invalid_cells_drop_their_block_and_a_short_arm_is_flagged() -> None:
    cells = synthetic_cells(
        {"none": 0.0, "sidecar": 0.5},
        blocks=4,
        models={50.0: LEVELS[50.0]},
        seed=1,
        invalid=[("sidecar", 50.0, 2)],
    )
    base = [c for c in cells if c.function == "none"]
    treated = [c for c in cells if c.function == "sidecar"]
    pairs, fell_back = paired_blocks(base, treated)
    assert [b.repetition for b, _ in pairs] == [1, 3, 4] and not fell_back
    p50 = compare_paired(
        base, treated, function="sidecar", baseline="none", rate=50.0, metrics=[METRIC_BY_KEY["p50_ms"]]
    )
    assert p50[0].n_blocks == 3 and p50[0].blocks_dropped == 1 and not p50[0].uses_invalid_cells
    # Only one valid block left: every block is used and the comparison is flagged.
    for cell in treated[2:]:
        cell.valid = False
    pairs, fell_back = paired_blocks(base, treated)
    assert len(pairs) == 4 and fell_back
    # One block: a change, but no interval, no call and no resolution.
    single = compare_paired(
        base[:1], treated[:1], function="sidecar", baseline="none", rate=50.0, metrics=[METRIC_BY_KEY["p50_ms"]]
    )[0]
    assert single.n_blocks == 1 and single.low is None and single.half_width is None
    assert not single.significant and single.detectable_change is None
    # A block holds each function once: two cells of one repetition are refused.
    with pytest.raises(ValueError, match="two cells in repetition 1"):
        paired_blocks(base, [*treated, treated[0]])


def test_the_detectable_change_is_the_one_the_study_finds_at_the_stated_rates() -> None:
    sd, blocks = 0.3, 6
    significant_at = detectable_change(sd, blocks)
    assert significant_at == pytest.approx(stats.t.ppf(0.975, 5) * sd / np.sqrt(6))
    with_power = detectable_change_with_power(sd, blocks, power=0.8)
    assert detection_power(with_power, sd, blocks) == pytest.approx(0.8, abs=1e-6)
    # By simulation: block differences of N(change, sd) over 6 blocks, 40,000 studies.
    rng = np.random.default_rng(0)
    found = t_interval(rng.normal(with_power, sd, (40_000, blocks))).excludes_zero().mean()
    assert found == pytest.approx(0.8, abs=0.01)
    # A change exactly at the significance threshold is found a little more than half the time (the
    # noncentral t leans right), as often as the power function says.
    at_threshold = t_interval(rng.normal(significant_at, sd, (40_000, blocks))).excludes_zero().mean()
    assert at_threshold == pytest.approx(detection_power(significant_at, sd, blocks), abs=0.01)
    assert 0.5 < at_threshold < 0.6
    # No spread: any change is detected, none is needed.
    assert detectable_change_with_power(0.0, 4) == 0.0 and detection_power(0.1, 0.0, 4) == 1.0
    with pytest.raises(ValueError, match="at least 2 blocks"):
        detectable_change(0.3, 1)


def test_blocks_for_a_half_width_target() -> None:
    needed = blocks_for_half_width(0.3, 0.05)
    assert needed is not None
    assert detectable_change(0.3, needed) <= 0.05 < detectable_change(0.3, needed - 1)
    assert blocks_for_half_width(0.0, 0.05) == 2
    assert blocks_for_half_width(1e6, 1e-6) is None
    with pytest.raises(ValueError, match="above 0"):
        blocks_for_half_width(0.3, 0.0)


def test_study_resolution_is_the_coarsest_function_at_each_level() -> None:
    cells = synthetic_cells({"none": 0.0, "sidecar": 0.5, "mtls": 0.6}, blocks=5, models=LEVELS, seed=2)
    comparisons = compare_study_paired(cells, BASELINES)
    rows = study_resolution(comparisons)
    assert [row.rate for row in rows] == sorted(row.rate for row in rows)
    assert {(row.rate, row.metric) for row in rows} == {(c.rate, c.metric) for c in comparisons}
    for row in rows:
        same = [c for c in comparisons if c.rate == row.rate and c.metric == row.metric]
        assert row.detectable_change == max(_detectable(c) for c in same)
        widest = max(same, key=_detectable_80)
        assert (row.widest_function, row.detectable_change_80) == (widest.function, widest.detectable_change_80)
        assert row.n_blocks == 5
    # Cells at 200 rps hold 4 times the requests: p99 rests on 10 samples, not 2.5, and is finer.
    p99 = {row.rate: row.detectable_change for row in rows if row.metric == "p99_ms"}
    assert p99[200.0] < p99[50.0] / 1.5
