"""A run's headline figures and their 95% intervals, checked on runs of known latency distributions."""

from __future__ import annotations

import math
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pytest
from tests.support.synthetic_runs import make_plan, synthetic_run

from meshload.results import headline
from meshload.results.headline import headline_figures, wilson_interval
from meshload.results.outputs import load_run_result, write_run_outputs

MEDIAN_MS, SIGMA = 5.0, 0.5


def _true_percentile_ms(percentile: float) -> float:
    return MEDIAN_MS * math.exp(SIGMA * NormalDist().inv_cdf(percentile / 100.0))


def test_intervals_cover_the_true_percentiles_of_independent_latencies_about_95_percent() -> None:
    rng = np.random.default_rng(11)
    runs = 40
    covered = {"p50_ms": 0, "p99_ms": 0}
    for index in range(runs):
        figures = headline_figures(synthetic_run(rng, run_id=f"r{index}", median_ms=MEDIAN_MS, sigma=SIGMA))
        for key, percentile in (("p50_ms", 50.0), ("p99_ms", 99.0)):
            estimate = figures[key]
            assert estimate.low is not None and estimate.high is not None and estimate.value is not None
            assert estimate.low <= estimate.value <= estimate.high
            covered[key] += estimate.low <= _true_percentile_ms(percentile) <= estimate.high
    # 40 runs at a true 95%: 34 or more covered with 98.6% probability (the seed is fixed).
    assert covered["p50_ms"] >= 34, covered
    assert covered["p99_ms"] >= 34, covered


def test_the_block_bootstrap_widens_the_interval_when_seconds_drift() -> None:
    """A machine whose speed drifts second by second moves a run's p50 more than its request count
    suggests; the order-statistic interval alone would miss the process's median most of the time."""
    rng = np.random.default_rng(5)
    drift = 0.15  # each second's latencies scaled by a lognormal factor of this spread
    reference = np.concatenate(
        [rng.lognormal(np.log(MEDIAN_MS) + rng.normal(0, drift), SIGMA, 500) for _ in range(4000)]
    )
    true_median = float(np.median(reference))
    runs, covered, covered_by_sampling_alone = 30, 0, 0
    for index in range(runs):
        result = synthetic_run(
            rng, run_id=f"d{index}", median_ms=MEDIAN_MS, sigma=SIGMA, second_effect_sd=drift, seconds=12
        )
        estimate = headline_figures(result)["p50_ms"]
        assert estimate.low is not None and estimate.high is not None
        covered += estimate.low <= true_median <= estimate.high
        low_us, high_us = headline._order_statistic_intervals(result.corrected, [50.0])[50.0]
        covered_by_sampling_alone += low_us / 1000 <= true_median <= high_us / 1000
    assert covered >= 25, (covered, covered_by_sampling_alone)  # about 95% of 30
    assert covered_by_sampling_alone <= 20, covered_by_sampling_alone


def test_error_rate_interval_is_wilson_at_zero_and_covers_the_true_rate() -> None:
    rng = np.random.default_rng(3)
    clean = headline_figures(synthetic_run(rng, run_id="clean"))["error_rate_pct"]
    attempts = 2000
    assert clean.value == 0.0 and clean.low == 0.0
    assert clean.high == pytest.approx(100.0 * 1.96**2 / (attempts + 1.96**2), rel=1e-3)

    failing = headline_figures(synthetic_run(rng, run_id="failing", failed_per_second=10))["error_rate_pct"]
    assert failing.value == pytest.approx(5.0)
    assert failing.low is not None and failing.high is not None
    low, high = wilson_interval(100, attempts)
    assert failing.low <= 100 * low <= 5.0 <= 100 * high <= failing.high

    assert wilson_interval(0, 10) == (0.0, pytest.approx(1.96**2 / (10 + 1.96**2), rel=1e-3))


def test_figures_from_a_run_folder_equal_those_of_the_run_that_wrote_it(tmp_path: Path) -> None:
    """`meshload history import` reads folders: the interval log has no warm-up flags, so the
    measured seconds must be told apart by time, and give the same intervals."""
    result = synthetic_run(np.random.default_rng(8), run_id="folder", plan=make_plan(), failed_per_second=3)
    write_run_outputs(result, tmp_path)
    loaded = load_run_result(tmp_path)
    assert any(record.offset_s < 1.0 for record in loaded.records)  # the warm-up second is in the log
    assert headline_figures(loaded) == headline_figures(result)


def test_a_run_without_interval_records_keeps_the_sampling_interval_and_no_proxy_figures() -> None:
    result = synthetic_run(np.random.default_rng(2), run_id="bare")
    result.records = []
    figures = headline_figures(result)
    low_us, high_us = headline._order_statistic_intervals(result.corrected, [99.0])[99.0]
    assert (figures["p99_ms"].low, figures["p99_ms"].high) == (low_us / 1000, high_us / 1000)
    assert figures["proxy_cpu_mcores"].value is None and figures["rate_rps"].value == pytest.approx(200.0)
