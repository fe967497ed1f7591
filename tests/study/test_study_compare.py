"""The comparison statistics: bootstrap intervals on known distributions, metrics of real histograms."""

from __future__ import annotations

import numpy as np
import pytest

from meshload.results.bootstrap import bootstrap_mean_difference, interval_note
from meshload.results.cell_summary import CellSummary, run_metrics
from meshload.results.compare import Comparison, compare_studies, compare_study, percentile_deltas

TRIALS = 200


def _trial_rates(n: int, shift: float) -> tuple[float, float]:
    """Over many seeded experiments with `n` repetitions per arm (values ~ N(10, 0.5), the treated
    arm shifted by `shift`): the fraction called significant, and the fraction of intervals that
    contain the true shift."""
    significant = covered = 0
    for trial in range(TRIALS):
        rng = np.random.default_rng([trial, n])
        baseline = rng.normal(10.0, 0.5, n)
        treated = rng.normal(10.0 + shift, 0.5, n)
        estimate = bootstrap_mean_difference(baseline.tolist(), treated.tolist(), seed=trial, resamples=2000)
        assert estimate.low <= estimate.estimate <= estimate.high
        assert estimate.estimate == pytest.approx(treated.mean() - baseline.mean())
        significant += estimate.significant
        covered += estimate.low <= shift <= estimate.high
    return significant / TRIALS, covered / TRIALS


def test_bootstrap_finds_a_real_shift_and_not_a_missing_one() -> None:
    shifted_significant, shifted_covered = _trial_rates(5, shift=1.5)
    null_significant, null_covered = _trial_rates(5, shift=0.0)
    assert shifted_significant > 0.9
    assert null_significant < 0.25
    assert null_significant < shifted_significant / 3
    assert shifted_covered > 0.75 and null_covered > 0.75
    # With 3 repetitions the percentile bootstrap covers less than its nominal 95%: the reports'
    # note saying so is true, and the null is called significant more often than 5%.
    null_significant_3, _ = _trial_rates(3, shift=0.0)
    assert null_significant_3 > 0.05
    assert "wide" in interval_note(3) and "95%" in interval_note(3)


def test_bootstrap_is_reproducible_and_handles_degenerate_arms() -> None:
    rng = np.random.default_rng(0)
    baseline, treated = rng.normal(10, 1, 12).tolist(), rng.normal(11, 1, 12).tolist()
    first = bootstrap_mean_difference(baseline, treated, seed=7)
    again = bootstrap_mean_difference(baseline, treated, seed=7)
    other = bootstrap_mean_difference(baseline, treated, seed=8)
    assert first == again
    assert (first.low, first.high) != (other.low, other.high)
    # Every value equal in both arms (e.g. no errors anywhere): a zero-width interval, not significant.
    zero = bootstrap_mean_difference([0.0, 0.0], [0.0, 0.0, 0.0])
    assert (zero.estimate, zero.low, zero.high, zero.significant) == (0.0, 0.0, 0.0, False)
    with pytest.raises(ValueError):
        bootstrap_mean_difference([], [1.0])
    # One value per arm: however large the difference, nothing says it is more than noise.
    single = bootstrap_mean_difference([1.0], [5.0])
    assert (single.estimate, single.low, single.high, single.significant) == (4.0, 4.0, 4.0, False)


def test_run_metrics_come_from_the_histogram_errors_and_mesh_usage(make_run) -> None:
    result = make_run(seed=1, median_ms=2.0, shift_ms=1.0, count=20_000, rate=200.0, errors=100, proxy_cpu_mcores=80.0)
    metrics = run_metrics(result)
    # Lognormal(ln 2, 0.35) + 1 ms: median 3 ms, p99 = 1 + 2·e^(0.35·2.326) ≈ 5.50 ms (3 digits of HDR).
    assert metrics["p50_ms"] == pytest.approx(3.0, rel=0.02)
    assert metrics["p99_ms"] == pytest.approx(1 + 2 * np.exp(0.35 * 2.3263), rel=0.03)
    p50, p90, p99, p999 = (metrics[key] for key in ("p50_ms", "p90_ms", "p99_ms", "p99.9_ms"))
    assert p50 is not None and p90 is not None and p99 is not None and p999 is not None
    assert p50 < p90 < p99 <= p999
    assert metrics["error_rate_pct"] == pytest.approx(100 * 100 / 20_100)
    # 80 mcores at 200 rps is 400 mcores per 1,000 rps.
    assert metrics["proxy_cpu_mcores_per_krps"] == pytest.approx(400.0)
    assert metrics["proxy_mem_mb"] == pytest.approx(30.0)
    unsampled = run_metrics(make_run(seed=2, proxy_cpu_mcores=None))
    assert unsampled["proxy_cpu_mcores_per_krps"] is None and unsampled["proxy_mem_mb"] is None


def _cells(
    make_run, function: str, shift_ms: float, seeds: range, cpu: float, rate: float = 100.0
) -> list[CellSummary]:
    return [
        CellSummary.from_run(
            make_run(seed=seed, shift_ms=shift_ms, proxy_cpu_mcores=cpu, rate=rate),
            function=function,
            rate=rate,
            repetition=index + 1,
            order=seed,
        )
        for index, seed in enumerate(seeds)
    ]


def test_compare_study_measures_each_function_against_its_baseline(make_run) -> None:
    cells = (
        _cells(make_run, "none", 0.0, range(3), cpu=10.0)
        + _cells(make_run, "sidecar", 1.0, range(10, 13), cpu=50.0)
        + _cells(make_run, "mtls", 1.5, range(20, 23), cpu=70.0)
    )
    # An invalid cell (the generator fell behind) with absurd figures must not move anything.
    broken = _cells(make_run, "mtls", 500.0, range(30, 31), cpu=900.0)[0]
    broken.valid = False
    cells.append(broken)
    baselines = {"none": None, "sidecar": "none", "mtls": "sidecar"}
    comparisons = compare_study(cells, baselines, seed=3)
    found = {(c.function, c.metric): c for c in comparisons}
    assert {c.function for c in comparisons} == {"sidecar", "mtls"}
    assert {c.baseline for c in comparisons if c.function == "mtls"} == {"sidecar"}
    sidecar_p50 = found["sidecar", "p50_ms"]
    assert sidecar_p50.change == pytest.approx(1.0, abs=0.1)
    assert sidecar_p50.significant and sidecar_p50.low > 0
    mtls_p50 = found["mtls", "p50_ms"]
    assert mtls_p50.change == pytest.approx(0.5, abs=0.1) and mtls_p50.significant
    assert mtls_p50.n_function == 3  # the invalid cell is left out
    assert found["mtls", "proxy_cpu_mcores_per_krps"].change == pytest.approx(200.0, rel=0.05)
    for comparison in comparisons:
        assert comparison.low <= comparison.change <= comparison.high
    # Errors are 0 everywhere: a change of exactly 0, never significant.
    assert found["sidecar", "error_rate_pct"].change == 0 and not found["sidecar", "error_rate_pct"].significant
    assert compare_study(cells, baselines, seed=3)[0] == comparisons[0]  # seeded: reproducible


def test_two_studies_and_two_runs_side_by_side(make_run) -> None:
    a = _cells(make_run, "sidecar", 0.0, range(3), cpu=50.0)
    b = _cells(make_run, "sidecar", 2.0, range(5, 8), cpu=50.0)
    found = {c.metric: c for c in compare_studies(a, b)}
    assert found["p50_ms"].baseline == "A"
    assert found["p50_ms"].change == pytest.approx(2.0, abs=0.1) and found["p50_ms"].significant
    deltas = {d.percentile: d for d in percentile_deltas(a[0].latency(), b[0].latency())}
    assert deltas["50"].change_ms == pytest.approx(2.0, abs=0.1)
    assert deltas["50"].change_pct == pytest.approx(100 * deltas["50"].change_ms / deltas["50"].a_ms)
    assert deltas["99.9"].b_ms > deltas["50"].b_ms


def test_an_arm_short_of_valid_cells_keeps_its_invalid_ones_and_is_flagged(make_run) -> None:
    none = _cells(make_run, "none", 0.0, range(3), cpu=0.0)
    sidecar = _cells(make_run, "sidecar", 1.0, range(10, 13), cpu=50.0)
    baselines = {"none": None, "sidecar": "none"}

    def p50() -> Comparison:
        return next(c for c in compare_study(none + sidecar, baselines) if c.metric == "p50_ms")

    # Two valid cells of three are enough for an interval: the invalid one is left out, no flag.
    none[0].valid = False
    assert (p50().n_baseline, p50().uses_invalid_cells) == (2, False)
    # One valid cell would give no interval, none valid no comparison: every cell is used, flagged.
    for valid_left in (1, 0):
        for cell in none[: 3 - valid_left]:
            cell.valid = False
        found = p50()
        assert (found.n_baseline, found.uses_invalid_cells, found.n_function) == (3, True, 3)
        assert found.change == pytest.approx(1.0, abs=0.1) and found.low < found.change < found.high
