"""A study's resolution: how small a change it can see, so "no significant difference" has a size.

From the spread of the block differences (sd over n blocks) of a paired comparison:

- the smallest change the study calls significant: |mean| must exceed t(n-1) · sd / √n, the interval's
  half-width;
- the change it detects with a given power (80%): the δ at which the two-sided t test rejects with
  that probability, from the noncentral t distribution (df n-1, noncentrality δ√n / sd);
- the blocks needed for an interval half-width target.

`study_resolution` gives, per load level and metric, the widest of these over the study's functions:
the change every comparison at that level could see.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .block_intervals import t_quantile

if TYPE_CHECKING:
    from .paired import PairedComparison

#: Beyond this many blocks a target is called out of reach rather than searched further.
MAX_BLOCKS = 100_000


def detectable_change(sd: float, n_blocks: int, *, confidence: float = 0.95) -> float:
    """The smallest |mean difference| a paired t interval over `n_blocks` blocks calls significant."""
    _check(sd, n_blocks)
    return float(t_quantile(confidence, n_blocks - 1)) * sd / math.sqrt(n_blocks)


def detection_power(change: float, sd: float, n_blocks: int, *, confidence: float = 0.95) -> float:
    """The probability that the paired t test calls a true `change` significant."""
    _check(sd, n_blocks)
    if sd == 0:
        return 1.0 if change != 0 else 0.0
    from scipy import stats  # imported when used: every worker imports `results`, few need scipy

    df = n_blocks - 1
    critical = float(t_quantile(confidence, df))
    noncentrality = abs(change) * math.sqrt(n_blocks) / sd
    # The far tail as sf(critical) at -noncentrality (symmetry): scipy's cdf there can return NaN.
    return float(stats.nct.sf(critical, df, noncentrality) + stats.nct.sf(critical, df, -noncentrality))


def detectable_change_with_power(sd: float, n_blocks: int, *, confidence: float = 0.95, power: float = 0.8) -> float:
    """The true change the study calls significant with probability `power`."""
    _check(sd, n_blocks)
    if not 0.0 < power < 1.0:
        raise ValueError(f"power {power} is not between 0 and 1")
    # The power depends on the change only through change / sd: solve once per block count.
    return sd * _detectable_change_per_sd(n_blocks, confidence, power)


@functools.lru_cache(maxsize=1024)
def _detectable_change_per_sd(n_blocks: int, confidence: float, power: float) -> float:
    from scipy import optimize, stats

    if power <= 1.0 - confidence:
        return 0.0
    # Between 0 and the normal approximation, doubled until it is enough (few blocks need more).
    upper = (float(t_quantile(confidence, n_blocks - 1)) + stats.norm.ppf(power)) / math.sqrt(n_blocks)
    while detection_power(upper, 1.0, n_blocks, confidence=confidence) < power:
        upper *= 2.0
    return float(
        optimize.brentq(
            lambda change: detection_power(change, 1.0, n_blocks, confidence=confidence) - power,
            0.0,
            upper,
            xtol=1e-12,
        )
    )


def blocks_for_half_width(sd: float, target: float, *, confidence: float = 0.95) -> int | None:
    """The fewest blocks whose paired t interval is at most `target` wide on each side, if the block
    differences keep their spread `sd` (None: more than `MAX_BLOCKS`)."""
    if target <= 0:
        raise ValueError(f"target half-width {target} must be above 0")
    if sd < 0 or not math.isfinite(sd):
        raise ValueError(f"standard deviation {sd} must be finite and non-negative")
    if sd == 0:
        return 2
    from scipy import stats

    # t(n-1) > z, so the normal answer is a lower bound; search upwards from it in one vector.
    start = max(int((stats.norm.ppf(0.5 + confidence / 2.0) * sd / target) ** 2), 2)
    if start > MAX_BLOCKS:
        return None
    candidates = np.arange(start, min(start * 2 + 64, MAX_BLOCKS) + 1)
    widths = t_quantile(confidence, candidates - 1) * sd / np.sqrt(candidates)
    reached = np.flatnonzero(widths <= target)
    return int(candidates[reached[0]]) if reached.size else None


def _check(sd: float, n_blocks: int) -> None:
    if n_blocks < 2:
        raise ValueError("the resolution needs at least 2 blocks")
    if sd < 0 or not math.isfinite(sd):
        raise ValueError(f"standard deviation {sd} must be finite and non-negative")


@dataclass(frozen=True)
class ResolutionRow:
    """What a study could see at one load level in one metric: the widest over its functions."""

    rate: float
    metric: str
    unit: str
    n_blocks: int  # the fewest blocks among the comparisons
    detectable_change: float  # smallest change called significant, for every function
    detectable_change_80: float  # change detected with 80% power, for every function
    widest_function: str  # the function whose comparison set these figures


def study_resolution(comparisons: Sequence[PairedComparison]) -> list[ResolutionRow]:
    """Per load level and metric, the coarsest resolution of any function (comparisons without an
    interval are left out), sorted by load level, metrics in the comparisons' order."""
    groups: dict[tuple[float, str], list[PairedComparison]] = {}
    for comparison in comparisons:
        if comparison.detectable_change is not None and comparison.detectable_change_80 is not None:
            groups.setdefault((comparison.rate, comparison.metric), []).append(comparison)
    rows = []
    for (rate, metric), group in groups.items():
        widest = max(group, key=lambda c: c.detectable_change_80 or 0.0)
        rows.append(
            ResolutionRow(
                rate=rate,
                metric=metric,
                unit=widest.unit,
                n_blocks=min(c.n_blocks for c in group),
                detectable_change=max(c.detectable_change or 0.0 for c in group),
                detectable_change_80=widest.detectable_change_80 or 0.0,
                widest_function=widest.function,
            )
        )
    return sorted(rows, key=lambda row: row.rate)
