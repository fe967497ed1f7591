"""A/A calibration: the study's intervals checked on the machine itself, where the truth is known.

An A/A study runs one function as two arms, interleaved in blocks like any other pair, so every true
difference is 0. Two figures follow from its cells:

- the false-positive rate: the share of its comparisons (every metric at every load level) called
  significant, which should be about 1 - confidence (5%);
- the empirical coverage: the study's blocks are split into many smaller sub-studies of
  `sub_study_blocks` blocks each (every subset when there are few, a seeded sample of subsets when
  there are many), each sub-study draws its paired interval, and the coverage is the share of those
  intervals that hold 0. It measures the interval at that block count on this machine's own drift,
  stalls and correlations, not on a model of them.

Metrics that never varied (every block difference 0, such as an error rate of 0 in every cell) are
left out of both figures: their interval of no width would count as covered and tell nothing.

Each figure comes with a Clopper-Pearson interval. The sub-studies overlap (they share blocks), and the
metrics of one cell are correlated, so the coverage's interval counts only disjoint sub-studies
(⌊n/k⌋ per metric and load level): it is honest about how little a short A/A study can tell.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .block_intervals import t_interval
from .bootstrap import CONFIDENCE
from .cell_summary import METRICS, CellSummary, Metric
from .compare import compare_study_paired
from .paired import MIN_BLOCKS_FOR_INTERVAL, PairedComparison

#: Sub-studies drawn per metric and load level when there are more subsets than this.
MAX_SUB_STUDIES = 200


@dataclass(frozen=True)
class Proportion:
    """A share of `total` events with its exact (Clopper-Pearson) interval."""

    count: int
    total: int
    low: float
    high: float

    @property
    def rate(self) -> float:
        return self.count / self.total if self.total else math.nan


def proportion(count: int, total: int, *, confidence: float = CONFIDENCE) -> Proportion:
    if total == 0:
        return Proportion(0, 0, 0.0, 1.0)
    from scipy import stats  # imported when used: every worker imports `results`, few need scipy

    interval = stats.binomtest(count, total).proportion_ci(confidence_level=confidence, method="exact")
    return Proportion(count, total, float(interval.low), float(interval.high))


@dataclass(frozen=True)
class SubStudyCoverage:
    """Coverage of 0 by the intervals of sub-studies of one metric at one load level."""

    rate: float
    metric: str
    blocks: int  # blocks the A/A study has here
    sub_studies: int
    covered: int


@dataclass
class AACalibration:
    """What an A/A study says about the study's intervals on this machine."""

    arm_a: str
    arm_b: str
    confidence: float
    comparisons: list[PairedComparison]
    false_positives: Proportion  # comparisons called significant, of those with an interval
    sub_study_blocks: int
    coverage: Proportion  # sub-study intervals holding 0 (count/total), interval from disjoint ones
    sub_study_intervals: int  # every sub-study interval drawn (overlapping)
    by_metric: list[SubStudyCoverage] = field(default_factory=list)

    @property
    def nominal_false_positive_rate(self) -> float:
        return 1.0 - self.confidence


def calibrate_aa(
    cells: Sequence[CellSummary],
    arm_a: str,
    arm_b: str,
    *,
    confidence: float = CONFIDENCE,
    metrics: Sequence[Metric] = METRICS,
    sub_study_blocks: int | None = None,
    max_sub_studies: int = MAX_SUB_STUDIES,
    seed: int = 0,
) -> AACalibration:
    """The false-positive rate and the empirical coverage of the paired intervals of an A/A study
    whose two arms are the functions `arm_a` (the baseline) and `arm_b`.

    `sub_study_blocks` is the size of the sub-studies (default: half the blocks, at least 2); a load
    level with fewer blocks than that adds no sub-study.
    """
    comparisons = compare_study_paired(
        [cell for cell in cells if cell.function in (arm_a, arm_b)],
        {arm_a: None, arm_b: arm_a},
        confidence=confidence,
        metrics=metrics,
    )
    # A metric that never varied (no error in any cell: every block difference 0) has an interval of
    # no width around 0; it would count as covered and never as a false positive, and say nothing.
    drawn = [c for c in comparisons if c.low is not None and any(d != 0.0 for d in c.differences)]
    false_positives = proportion(sum(c.significant for c in drawn), len(drawn), confidence=confidence)
    most_blocks = max((c.n_blocks for c in drawn), default=0)
    size = sub_study_blocks if sub_study_blocks is not None else max(most_blocks // 2, MIN_BLOCKS_FOR_INTERVAL)
    if size < MIN_BLOCKS_FOR_INTERVAL:
        raise ValueError(f"sub-studies need at least {MIN_BLOCKS_FOR_INTERVAL} blocks (got {size})")
    rng = np.random.default_rng(seed)
    by_metric = []
    disjoint_total = 0
    subsets_of: dict[int, np.ndarray] = {}  # the same sub-studies for every metric with as many blocks
    for comparison in drawn:
        differences = np.asarray(comparison.differences)
        if differences.size < size:
            continue
        if differences.size not in subsets_of:
            subsets_of[differences.size] = _subsets(differences.size, size, max_sub_studies, rng)
        subsets = subsets_of[differences.size]
        covers = t_interval(differences[subsets], confidence=confidence).covers(0.0)
        by_metric.append(
            SubStudyCoverage(comparison.rate, comparison.metric, int(differences.size), len(subsets), int(covers.sum()))
        )
        disjoint_total += differences.size // size
    intervals = sum(item.sub_studies for item in by_metric)
    covered = sum(item.covered for item in by_metric)
    # The point estimate uses every sub-study; its interval only as many as are disjoint.
    share = covered / intervals if intervals else math.nan
    disjoint_covered = round(share * disjoint_total) if intervals else 0
    interval = proportion(disjoint_covered, disjoint_total, confidence=confidence)
    return AACalibration(
        arm_a=arm_a,
        arm_b=arm_b,
        confidence=confidence,
        comparisons=comparisons,
        false_positives=false_positives,
        sub_study_blocks=size,
        coverage=Proportion(covered, intervals, interval.low, interval.high),
        sub_study_intervals=intervals,
        by_metric=by_metric,
    )


def _subsets(n: int, size: int, limit: int, rng: np.random.Generator) -> np.ndarray:
    """Index sets of `size` of `n` blocks: all of them when few, else `limit` distinct random ones."""
    if math.comb(n, size) <= limit:
        return np.array(list(itertools.combinations(range(n), size)), dtype=np.int64)
    found = np.empty((0, size), dtype=np.int64)
    while len(found) < limit:
        # Random subsets as the first `size` places of random permutations, many at a time; the
        # duplicates are dropped keeping the order of drawing, so the first `limit` are a fair sample.
        drawn = np.sort(np.argsort(rng.random((2 * limit, n)), axis=1)[:, :size], axis=1)
        candidates = np.concatenate([found, drawn])
        _, first = np.unique(candidates, axis=0, return_index=True)
        found = candidates[np.sort(first)]
    return found[:limit]
