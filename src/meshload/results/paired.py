"""Paired, within-block comparisons: each function against its baseline inside each block.

A study runs in blocks: one repetition at one load level, every function once, in a shuffled order
(`scenarios.study_plan`). The two cells of a comparison in one block ran a minute apart at most,
under the same state of a shared machine; the blocks ran many minutes apart. So each block gives one
difference, function minus baseline, in which the drift between blocks cancels, and the comparison is
the mean of those block differences with a paired Student t interval:

    mean(d) ± t(n-1, 0.975) · sd(d) / √n        over the n blocks where both cells are usable

Why this interval: `bench/bench_study_statistics.py` measured every candidate on 3,000 simulated
studies per setting with this machine's drift (`synthetic_study`; profiles 50rps, 200rps, stalls). From
3 to 30 blocks the t interval covered a zero effect 94.3-97.1% of the time across p50, p90, p99, proxy
CPU and the error rate (so it called 2.9-5.7% of them significant). The bootstraps over blocks fell
short where blocks are few: percentile 73-76% and BCa 70-72% at 3 blocks, 84% and 83-85% at 5, still
89-90% at 10; the studentised bootstrap drew infinite intervals at 3 blocks (a resample of one block
repeated has no spread) and 93-95% from 5 on; the hierarchical bootstrap (blocks, then the requests
inside them) covered p50 74-85% at 3 blocks and over-covered p99 (99-100%) at every block count (it
counts the requests' sampling noise twice: once inside each cell, and again in the spread between
blocks). The block differences of a pure shift are symmetric (two draws of one distribution), which is
where the t interval is at its best, even for p99's skewed cells.

The figures each comparison carries for a report: the change and its interval, the spread of the
block differences, and the resolution (`resolution`): the smallest change the study would have called
significant, the change it would detect with 80% power, and how large a change the interval rules out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .block_intervals import t_interval
from .resolution import detectable_change, detectable_change_with_power

if TYPE_CHECKING:
    from .cell_summary import CellSummary, Metric

#: The method named in reports.
PAIRED_METHOD = "paired t interval over blocks (function - baseline within each repetition x load level)"
#: The fewest usable blocks an interval can be drawn from.
MIN_BLOCKS_FOR_INTERVAL = 2
#: The power at which the detectable change is stated.
DETECTION_POWER = 0.8


def paired_interval_note(blocks: int) -> str:
    """What a reader should know about the paired intervals, given the blocks per comparison."""
    if blocks < MIN_BLOCKS_FOR_INTERVAL:
        return "1 block per comparison: no interval can be drawn; each change is a single difference."
    return (
        f"{blocks} blocks per comparison (fewer where a block had an invalid cell): each change is the mean of "
        "the function's difference from its baseline within each block, with the paired t interval over blocks, "
        "which held 94-97% coverage from 3 blocks on in calibration (bench/bench_study_statistics.py)."
    )


@dataclass
class PairedComparison:
    """One function against its baseline at one load level, for one metric, block by block."""

    function: str
    baseline: str
    rate: float
    metric: str
    unit: str
    change: float  # mean over blocks of (function - baseline), in `unit`
    low: float | None  # None: fewer than 2 blocks, no interval
    high: float | None
    significant: bool
    n_blocks: int
    sd_blocks: float | None  # standard deviation of the block differences
    # Resolution: the smallest |change| this study calls significant (= the half-width), the change
    # it would detect with 80% power given the blocks' spread, and the largest |change| the interval
    # still allows ("rules out anything beyond").
    detectable_change: float | None
    detectable_change_80: float | None
    rules_out_beyond: float | None
    baseline_mean: float
    function_mean: float
    confidence: float
    repetitions: list[int] = field(default_factory=list)  # the blocks used, by repetition
    differences: list[float] = field(default_factory=list)
    # Blocks left out because a cell in them was invalid (the generator fell behind) or had no figure.
    blocks_dropped: int = 0
    # Too few blocks had both cells valid, so invalid cells were used: the reports flag the comparison.
    uses_invalid_cells: bool = False

    @property
    def half_width(self) -> float | None:
        if self.low is None or self.high is None:
            return None
        return (self.high - self.low) / 2.0

    @property
    def relative_change_pct(self) -> float | None:
        if self.baseline_mean == 0:
            return None
        return 100.0 * self.change / self.baseline_mean


def paired_blocks(
    baseline_cells: Sequence[CellSummary], function_cells: Sequence[CellSummary]
) -> tuple[list[tuple[CellSummary, CellSummary]], bool]:
    """The (baseline, function) cells of each block both arms ran at one load level, in repetition
    order, and whether invalid cells had to be used.

    A block with an invalid cell is left out (its latencies describe the generator, not the mesh),
    unless fewer than 2 blocks would remain: then every block is kept and the result is flagged, the
    way `compare.trusted_cells` treats an arm.
    """
    baseline_by_block = _by_repetition(baseline_cells)
    function_by_block = _by_repetition(function_cells)
    pairs = [
        (baseline_by_block[repetition], function_by_block[repetition])
        for repetition in sorted(baseline_by_block.keys() & function_by_block.keys())
    ]
    valid = [(base, treated) for base, treated in pairs if base.valid and treated.valid]
    if len(valid) >= MIN_BLOCKS_FOR_INTERVAL or len(valid) == len(pairs):
        return valid, False
    return pairs, True


def _by_repetition(cells: Sequence[CellSummary]) -> dict[int, CellSummary]:
    found: dict[int, CellSummary] = {}
    for cell in cells:
        if cell.repetition in found:
            raise ValueError(
                f"{cell.function} at {cell.rate:g} rps has two cells in repetition {cell.repetition}; "
                "a block holds each function once"
            )
        found[cell.repetition] = cell
    return found


def _figure(cell: CellSummary, metric: str) -> float | None:
    value = cell.metrics.get(metric)
    return float(value) if value is not None and math.isfinite(value) else None


def compare_paired(
    baseline_cells: Sequence[CellSummary],
    function_cells: Sequence[CellSummary],
    *,
    function: str,
    baseline: str,
    rate: float,
    metrics: Sequence[Metric],
    confidence: float = 0.95,
) -> list[PairedComparison]:
    """Every metric both arms have, compared block by block at one load level."""
    pairs, fell_back = paired_blocks(baseline_cells, function_cells)
    comparisons = []
    for metric in metrics:
        usable = [
            (base.repetition, b, f)
            for base, treated in pairs
            if (b := _figure(base, metric.key)) is not None and (f := _figure(treated, metric.key)) is not None
        ]
        if not usable:
            continue
        comparisons.append(
            paired_comparison(
                [rep for rep, _, _ in usable],
                np.array([b for _, b, _ in usable]),
                np.array([f for _, _, f in usable]),
                function=function,
                baseline=baseline,
                rate=rate,
                metric=metric,
                confidence=confidence,
                blocks_dropped=len(_blocks_of(baseline_cells, function_cells)) - len(usable),
                uses_invalid_cells=fell_back,
            )
        )
    return comparisons


def _blocks_of(baseline_cells: Sequence[CellSummary], function_cells: Sequence[CellSummary]) -> set[int]:
    return {c.repetition for c in baseline_cells} & {c.repetition for c in function_cells}


def paired_comparison(
    repetitions: list[int],
    baseline_values: np.ndarray,
    function_values: np.ndarray,
    *,
    function: str,
    baseline: str,
    rate: float,
    metric: Metric,
    confidence: float = 0.95,
    blocks_dropped: int = 0,
    uses_invalid_cells: bool = False,
) -> PairedComparison:
    """The comparison of one metric from its per-block figures (aligned by block)."""
    differences = function_values - baseline_values
    n = int(differences.size)
    change = float(differences.mean())
    low = high = sd = detectable = detectable_80 = rules_out = None
    significant = False
    if n >= MIN_BLOCKS_FOR_INTERVAL:
        interval = t_interval(differences, confidence=confidence)
        low, high = float(interval.low), float(interval.high)
        sd = float(differences.std(ddof=1))
        significant = bool(interval.excludes_zero())
        detectable = detectable_change(sd, n, confidence=confidence)
        detectable_80 = detectable_change_with_power(sd, n, confidence=confidence, power=DETECTION_POWER)
        rules_out = max(abs(low), abs(high))
    return PairedComparison(
        function=function,
        baseline=baseline,
        rate=rate,
        metric=metric.key,
        unit=metric.unit,
        change=change,
        low=low,
        high=high,
        significant=significant,
        n_blocks=n,
        sd_blocks=sd,
        detectable_change=detectable,
        detectable_change_80=detectable_80,
        rules_out_beyond=rules_out,
        baseline_mean=float(baseline_values.mean()),
        function_mean=float(function_values.mean()),
        confidence=confidence,
        repetitions=list(repetitions),
        differences=[float(d) for d in differences],
        blocks_dropped=blocks_dropped,
        uses_invalid_cells=uses_invalid_cells,
    )
