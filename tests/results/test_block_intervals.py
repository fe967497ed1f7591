"""The interval methods on simulated studies with a known effect: the chosen paired t interval holds
its coverage from 3 blocks on, the bootstraps over blocks do not, and the hierarchical bootstrap's
shortcut resamples a histogram exactly as a multinomial draw does."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from meshload.results.block_intervals import (
    bca_bootstrap,
    percentile_bootstrap,
    studentized_bootstrap,
    t_interval,
)
from meshload.results.cell_summary import CellSummary
from meshload.results.hierarchical import EmpiricalDistribution, hierarchical_bootstrap, resampled_percentiles
from meshload.results.method_calibration import CALIBRATED_METRICS, Effect, measure_coverage
from meshload.results.synthetic_study import MODEL_PROFILES, simulate_studies, synthetic_cells

NOMINAL = 0.95
#: 1,500 studies give a coverage standard error of 0.56 points; 2.5 points is 4.5 of them.
TOLERANCE = 0.025


@pytest.mark.parametrize(
    ("profile", "blocks", "effect"),
    [
        ("50rps", 3, Effect()),
        ("200rps", 6, Effect(latency_ms=0.2, cpu_mcores_per_krps=20.0, error_rate_pct=0.2)),
        ("stalls", 5, Effect(latency_ms=0.5)),
    ],
)
def test_the_paired_t_interval_covers_the_truth_at_its_nominal_rate(profile: str, blocks: int, effect: Effect) -> None:
    figures = {
        f.metric: f
        for f in measure_coverage(MODEL_PROFILES[profile], blocks=blocks, effect=effect, studies=1500, seed=blocks)
    }
    assert set(figures) == set(CALIBRATED_METRICS)
    for metric in ("p50_ms", "p90_ms", "p99_ms", "proxy_cpu_mcores_per_krps"):
        assert abs(figures[metric].coverage - NOMINAL) <= TOLERANCE, figures[metric]
    # The error rate is mostly 0 in both cells of a block: the interval is conservative, never short.
    assert figures["error_rate_pct"].coverage >= NOMINAL - TOLERANCE
    if effect == Effect():
        # A zero effect is called significant at about the nominal 5%.
        for figure in figures.values():
            assert figure.called <= 1 - NOMINAL + TOLERANCE, figure
        assert figures["p50_ms"].called >= 1 - NOMINAL - TOLERANCE
    else:
        # A real effect is found three times as often as a zero one at least (0.2 ms over 6 blocks
        # at 200 rps: almost 1 in 2 studies; 0.5 ms over 5 blocks with stalls: most).
        assert figures["p50_ms"].called > 3 * (1 - NOMINAL)


def test_bootstraps_over_few_blocks_cover_too_little_which_is_why_t_was_chosen() -> None:
    figures = measure_coverage(
        MODEL_PROFILES["50rps"],
        blocks=3,
        effect=Effect(),
        studies=600,
        methods=("t", "percentile", "bca", "studentized", "hierarchical"),
        metrics=("p50_ms",),
        seed=4,
        resamples=500,
    )
    coverage = {f.method: f.coverage for f in figures}
    assert coverage["t"] > 0.92
    # Three blocks give a resampled mean only 10 distinct values: the percentile and BCa intervals are
    # far too narrow, and the hierarchical one (blocks, then requests) too.
    assert coverage["percentile"] < 0.85 and coverage["bca"] < 0.85 and coverage["hierarchical"] < 0.88
    # Bootstrap-t: a third of resamples repeat one block and have no spread, so its ends are infinite.
    width = next(f.median_half_width for f in figures if f.method == "studentized")
    assert width == np.inf


def test_interval_methods_agree_with_scipy_and_handle_degenerate_blocks() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(0.4, 0.3, (4, 12))
    ours = t_interval(values)
    for row, low, high in zip(values, ours.low, ours.high, strict=True):
        expected = stats.t.interval(0.95, row.size - 1, loc=row.mean(), scale=stats.sem(row))
        assert (low, high) == pytest.approx(expected)
    for method in (percentile_bootstrap, bca_bootstrap, studentized_bootstrap):
        intervals = method(values, rng=np.random.default_rng(1), resamples=4000)
        # Every method centres on the same mean and roughly agrees with t on 12 normal blocks.
        assert np.allclose(intervals.estimate, values.mean(axis=1))
        assert np.all(intervals.low < intervals.estimate) and np.all(intervals.estimate < intervals.high)
        assert np.allclose(intervals.half_width, ours.half_width, rtol=0.3)
        # Reproducible under a seed.
        again = method(values, rng=np.random.default_rng(1), resamples=4000)
        assert np.array_equal(intervals.low, again.low)
    # Equal blocks (e.g. no errors anywhere): a zero-width interval; 0 is called only if it is not 0.
    flat = t_interval(np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]))
    assert flat.half_width.tolist() == [0.0, 0.0]
    assert flat.excludes_zero().tolist() == [False, True]
    with pytest.raises(ValueError, match="at least 2 blocks"):
        t_interval([1.0])


def test_resampling_a_histogram_by_its_order_statistic_matches_a_multinomial_resample() -> None:
    rng = np.random.default_rng(8)
    cell = EmpiricalDistribution.from_samples(rng.lognormal(1.0, 0.5, 300))
    draws = 20_000
    shortcut = resampled_percentiles(cell, 90.0, draws, np.random.default_rng(1))
    # The long way: a multinomial draw of 300 requests over the cell's values, then its p90 (HDR rank).
    counts = np.random.default_rng(2).multinomial(300, np.full(300, 1 / 300), size=draws)
    rank = max(int(0.9 * 300 + 0.5), 1)
    direct = cell.values[np.argmax(np.cumsum(counts, axis=1) >= rank, axis=1)]
    assert stats.ks_2samp(shortcut, direct).pvalue > 0.01
    assert np.mean(shortcut) == pytest.approx(np.mean(direct), rel=0.01)


def test_hierarchical_bootstrap_reads_the_cells_hdr_histograms() -> None:
    cells = synthetic_cells({"sidecar": 0.0, "mtls": 0.5}, blocks=8, models={100.0: MODEL_PROFILES["50rps"]}, seed=0)
    by_block: dict[int, dict[str, EmpiricalDistribution]] = {}
    for cell in cells:
        by_block.setdefault(cell.repetition, {})[cell.function] = EmpiricalDistribution.from_histogram(cell.latency())
    blocks = [(pair["sidecar"], pair["mtls"]) for _, pair in sorted(by_block.items())]
    interval = hierarchical_bootstrap(blocks, 50.0, rng=np.random.default_rng(0), resamples=1000)
    differences = [_p50(cells, r, "mtls") - _p50(cells, r, "sidecar") for r in range(1, 9)]
    # The estimate is the mean of the cells' own p50 differences (the histograms' highest equivalent
    # values, as the study's metrics are); the interval is about as wide as the t interval of those
    # differences (8 blocks: the bootstrap's small-sample narrowing is mild there).
    assert float(interval.estimate) == pytest.approx(np.mean(differences))
    assert interval.low < interval.estimate < interval.high
    assert 0.6 < float(interval.half_width / t_interval(differences).half_width) < 1.4


def test_simulated_studies_have_the_drift_they_were_given() -> None:
    model = MODEL_PROFILES["50rps"]
    simulated = simulate_studies(model, studies=400, blocks=4, rng=np.random.default_rng(0), effect_ms=0.5)
    p50 = simulated.percentile_ms(50.0)
    # p50 near 2.5 ms; its cell-to-cell spread is the block drift (0.6 ms) plus a little more.
    assert np.median(p50[..., 0]) == pytest.approx(2.5, abs=0.15)
    assert 0.6 < p50[..., 0].std() < 0.8
    # Inside a block the drift cancels: the differences spread by the cells' own noise only.
    differences = p50[..., 1] - p50[..., 0]
    assert differences.mean() == pytest.approx(0.5, abs=0.02)
    assert 0.25 < differences.std() < 0.4


def _p50(cells: list[CellSummary], repetition: int, function: str) -> float:
    value = next(c for c in cells if c.repetition == repetition and c.function == function).metrics["p50_ms"]
    assert value is not None
    return value
