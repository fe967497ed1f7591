"""The percentile bootstrap interval of a difference of means, for two independent arms.

Each arm's repetitions are resampled with replacement (seeded, so a report is reproducible), the
difference of the resampled means is taken many times, and the interval is the middle 95% of those
differences. The change is called significant when the interval excludes 0.

With only a few repetitions the bootstrap sees only a few distinct values per arm: its interval is
wide and its real coverage is below the nominal 95%. `interval_note` says so in the reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Resamples per bootstrap interval: the interval's ends are stable to well under 1% of its width.
BOOTSTRAP_RESAMPLES = 10_000
CONFIDENCE = 0.95
#: Below this many repetitions per arm the reports warn that the interval is only indicative.
FEW_REPETITIONS = 5


@dataclass(frozen=True)
class DifferenceEstimate:
    """mean(treated) - mean(baseline), with a percentile bootstrap interval."""

    estimate: float
    low: float
    high: float
    n_baseline: int
    n_treated: int
    confidence: float = CONFIDENCE

    @property
    def significant(self) -> bool:
        """The interval excludes 0: the change is unlikely to be noise (at the stated confidence).

        Never with a single value in an arm: resampling one value always gives it back, so the
        interval has no width and says nothing about noise.
        """
        if min(self.n_baseline, self.n_treated) < 2:
            return False
        return self.low > 0.0 or self.high < 0.0


def bootstrap_mean_difference(
    baseline: Sequence[float],
    treated: Sequence[float],
    *,
    seed: int | Sequence[int] = 0,
    resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = CONFIDENCE,
) -> DifferenceEstimate:
    """Percentile bootstrap interval of mean(treated) - mean(baseline).

    Each arm is resampled with replacement on its own (the arms are independent runs), `resamples`
    times, from a generator seeded with `seed`, so the same data always gives the same interval.
    """
    base = np.asarray(baseline, dtype=np.float64)
    treat = np.asarray(treated, dtype=np.float64)
    if base.size == 0 or treat.size == 0:
        raise ValueError("both arms need at least one value")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence {confidence} is not between 0 and 1")
    rng = np.random.default_rng(seed)
    base_means = base[rng.integers(0, base.size, size=(resamples, base.size))].mean(axis=1)
    treat_means = treat[rng.integers(0, treat.size, size=(resamples, treat.size))].mean(axis=1)
    differences = treat_means - base_means
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(differences, [tail, 1.0 - tail])
    return DifferenceEstimate(
        estimate=float(treat.mean() - base.mean()),
        low=float(low),
        high=float(high),
        n_baseline=int(base.size),
        n_treated=int(treat.size),
        confidence=confidence,
    )


def interval_note(repetitions: int) -> str:
    """What a reader should know about the intervals, given the repetitions per arm."""
    if repetitions < 2:
        return "1 repetition per arm: no interval can be drawn; the change is a single difference."
    if repetitions < FEW_REPETITIONS:
        return (
            f"{repetitions} repetitions per arm: the bootstrap sees only {repetitions} values per arm, "
            "so each interval is wide and covers less than the nominal 95%; treat 'significant' as a "
            "hint, and add repetitions to confirm."
        )
    return f"{repetitions} repetitions per arm: 95% percentile bootstrap of the difference of means."
