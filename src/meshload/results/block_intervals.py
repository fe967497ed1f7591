"""Confidence intervals of a mean from a few block-level values, vectorised over many sets of blocks.

A study's paired comparison reduces each block (one repetition at one load level) to one value: the
function's figure minus its baseline's, measured minutes apart at most, so the drift between blocks
cancels. What is left is a mean of 3 to 30 such values and its interval. The candidates here all take
`values` with the blocks on the last axis, shape (..., n_blocks), so one call gives the intervals of
every comparison of a study, or of thousands of simulated studies at once (`method_calibration`):

- `t_interval`: mean ± t(n-1) · s / √n, the classical paired interval;
- `percentile_bootstrap`: the middle of the means of blocks resampled with replacement;
- `bca_bootstrap`: the same, its quantiles moved for bias and skew (Efron's BCa, jackknife acceleration);
- `studentized_bootstrap`: the quantiles of the resampled t statistic (bootstrap-t).

The hierarchical bootstrap, which also resamples the requests inside each block, lives in
`hierarchical` because it needs the cells' histograms, not one value per block.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: Resamples per bootstrap interval: enough that the 2.5% and 97.5% ends move by well under a tenth
#: of the interval between seeds, few enough to compute thousands of simulated studies in seconds.
BLOCK_BOOTSTRAP_RESAMPLES = 2000


@dataclass(frozen=True)
class Intervals:
    """Estimates and interval ends, each of shape (...) (the blocks axis reduced)."""

    estimate: np.ndarray
    low: np.ndarray
    high: np.ndarray

    @property
    def half_width(self) -> np.ndarray:
        return (self.high - self.low) / 2.0

    def covers(self, truth: float | np.ndarray) -> np.ndarray:
        return (self.low <= truth) & (truth <= self.high)

    def excludes_zero(self) -> np.ndarray:
        """Called significant: the interval lies wholly on one side of 0."""
        return (self.low > 0.0) | (self.high < 0.0)


IntervalMethod = Callable[..., Intervals]


def _blocks(values: np.ndarray | list[float]) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 0 or array.shape[-1] < 2:
        raise ValueError("an interval needs at least 2 blocks")
    return array


def t_quantile(confidence: float, degrees_of_freedom: int | np.ndarray) -> np.ndarray:
    """The two-sided Student t quantile: t(df) at 1 - (1 - confidence) / 2."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence {confidence} is not between 0 and 1")
    from scipy import stats  # imported when used: every worker imports `results`, few need scipy

    return np.asarray(stats.t.ppf(0.5 + confidence / 2.0, degrees_of_freedom), dtype=np.float64)


def t_interval(values: np.ndarray | list[float], *, confidence: float = 0.95, **_: object) -> Intervals:
    """mean ± t(n-1) · s / √n over the blocks (exact when the block values are normal)."""
    array = _blocks(values)
    n = array.shape[-1]
    mean = array.mean(axis=-1)
    half = t_quantile(confidence, n - 1) * array.std(axis=-1, ddof=1) / np.sqrt(n)
    return Intervals(mean, mean - half, mean + half)


def _resample_weights(n: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """How often each block appears in each resample, shape (resamples, n): a resample's mean is then
    one matrix product, for every set of blocks at once."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)


def _resampled_means(array: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return array @ weights.T / array.shape[-1]  # (..., resamples)


def percentile_bootstrap(
    values: np.ndarray | list[float],
    *,
    confidence: float = 0.95,
    rng: np.random.Generator,
    resamples: int = BLOCK_BOOTSTRAP_RESAMPLES,
) -> Intervals:
    """The middle `confidence` of the means of the blocks resampled with replacement."""
    array = _blocks(values)
    means = _resampled_means(array, _resample_weights(array.shape[-1], resamples, rng))
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail], axis=-1)
    return Intervals(array.mean(axis=-1), low, high)


def bca_bootstrap(
    values: np.ndarray | list[float],
    *,
    confidence: float = 0.95,
    rng: np.random.Generator,
    resamples: int = BLOCK_BOOTSTRAP_RESAMPLES,
) -> Intervals:
    """Efron's bias-corrected and accelerated interval of the mean of the blocks."""
    from scipy import stats

    array = _blocks(values)
    n = array.shape[-1]
    estimate = array.mean(axis=-1)
    means = np.sort(_resampled_means(array, _resample_weights(n, resamples, rng)), axis=-1)
    # Bias: where the estimate falls among its resamples (ties count half, so a degenerate set of
    # equal blocks gets no correction).
    below = (means < estimate[..., None]).mean(axis=-1) + 0.5 * (means == estimate[..., None]).mean(axis=-1)
    z0 = stats.norm.ppf(np.clip(below, 1.0 / resamples, 1.0 - 1.0 / resamples))
    # Acceleration from the jackknife of the mean: the skew of the leave-one-out means.
    jackknife = (array.sum(axis=-1, keepdims=True) - array) / (n - 1)
    spread = jackknife.mean(axis=-1, keepdims=True) - jackknife
    denominator = 6.0 * np.power((spread**2).sum(axis=-1), 1.5)
    with np.errstate(invalid="ignore", divide="ignore"):
        acceleration = np.where(denominator > 0, (spread**3).sum(axis=-1) / denominator, 0.0)
    tail = (1.0 - confidence) / 2.0
    ends = []
    for level in (tail, 1.0 - tail):
        z = z0 + stats.norm.ppf(level)
        adjusted = stats.norm.cdf(z0 + z / (1.0 - acceleration * z))
        ends.append(_quantile_of_sorted(means, adjusted))
    return Intervals(estimate, ends[0], ends[1])


def studentized_bootstrap(
    values: np.ndarray | list[float],
    *,
    confidence: float = 0.95,
    rng: np.random.Generator,
    resamples: int = BLOCK_BOOTSTRAP_RESAMPLES,
) -> Intervals:
    """Bootstrap-t: the t statistic's own resampled quantiles replace Student's."""
    array = _blocks(values)
    n = array.shape[-1]
    weights = _resample_weights(n, resamples, rng)
    estimate = array.mean(axis=-1)
    standard_error = array.std(axis=-1, ddof=1) / np.sqrt(n)
    means = _resampled_means(array, weights)
    second = (array**2) @ weights.T / n
    resampled_error = np.sqrt(np.maximum(second - means**2, 0.0) * n / (n - 1) / n)
    deviation = means - estimate[..., None]
    # A resample of one block repeated has no spread: its t is 0 when it also has no deviation,
    # else as large as can be (it says nothing finite about the spread).
    with np.errstate(invalid="ignore", divide="ignore"):
        t_star = np.where(resampled_error > 0, deviation / resampled_error, np.sign(deviation) * np.inf)
    t_star = np.sort(t_star, axis=-1)
    tail = (1.0 - confidence) / 2.0
    t_low = _quantile_of_sorted(t_star, np.full(estimate.shape, tail))
    t_high = _quantile_of_sorted(t_star, np.full(estimate.shape, 1.0 - tail))
    return Intervals(estimate, estimate - t_high * standard_error, estimate - t_low * standard_error)


def _quantile_of_sorted(sorted_values: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Each row's own quantile (`levels` has the rows' shape), by the inverse of the empirical CDF
    (no interpolation, so infinite resampled t values stay usable)."""
    count = sorted_values.shape[-1]
    index = np.clip(np.ceil(np.asarray(levels) * count).astype(np.int64) - 1, 0, count - 1)
    return np.take_along_axis(sorted_values, index[..., None], axis=-1)[..., 0]


#: The candidates by name, as the calibration script and tests refer to them.
BLOCK_METHODS: dict[str, IntervalMethod] = {
    "t": t_interval,
    "percentile": percentile_bootstrap,
    "bca": bca_bootstrap,
    "studentized": studentized_bootstrap,
}
