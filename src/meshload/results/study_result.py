"""A study's result: its plan, its environment and every cell it ran, and what they give: the paired
comparisons, the study's resolution, its half-width targets, and for an A/A study its calibration.

Its JSON form is `study_json` (`study.json`), its page `study_html` (`index.html`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..scenarios.study_plan import StudyPlan
from .aa_calibration import AACalibration, calibrate_aa
from .cell_summary import CellSummary
from .compare import Comparison, compare_study, compare_study_paired, trusted_cells
from .histogram import LatencyHistogram
from .paired import MIN_BLOCKS_FOR_INTERVAL, PairedComparison
from .resolution import ResolutionRow, study_resolution
from .sequential import MIN_BLOCKS_BEFORE_STOP
from .study_budget import BudgetOutcome, TargetRow, study_targets, target_rows
from .study_capacity import CapacityLine, CapacityRow, capacity_lines


@dataclass
class StudyResult:
    """What a study measured: its plan, its environment and every cell, in run order."""

    plan: StudyPlan
    started_unix_ms: int
    ended_unix_ms: int = 0
    environment: dict[str, object] = field(default_factory=dict)
    cells: list[CellSummary] = field(default_factory=list)
    # Rounds of blocks (repetitions at every load level) planned so far: the plan's repetitions, and
    # more when a time budget adds rounds. 0: the plan's repetitions.
    rounds: int = 0
    budget: BudgetOutcome | None = None
    estimated_duration_s: float = 0.0  # what the study said it would take before it started
    # Each arm's knee, when the plan asks for it (`find_max:`), in the plan's order.
    capacity: list[CapacityRow] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.rounds == 0:
            self.rounds = self.plan.repetitions

    @classmethod
    def start(
        cls, plan: StudyPlan, *, environment: dict[str, object] | None = None, estimated_duration_s: float = 0.0
    ) -> StudyResult:
        budget = BudgetOutcome(budget_s=plan.budget_s) if plan.budget_s is not None else None
        return cls(
            plan=plan,
            started_unix_ms=int(time.time() * 1000),
            environment=dict(environment or {}),
            budget=budget,
            estimated_duration_s=estimated_duration_s,
        )

    def finish(self, *, environment_after: object = None) -> None:
        self.ended_unix_ms = int(time.time() * 1000)
        if environment_after is not None:
            self.environment["load_average_after"] = environment_after

    @property
    def planned_cells(self) -> int:
        return self.rounds * self.plan.cells_per_round

    @property
    def complete(self) -> bool:
        return len(self.cells) == self.planned_cells

    @property
    def blocks_done(self) -> int:
        """Complete rounds: the blocks every load level has."""
        return len(self.cells) // self.plan.cells_per_round

    def comparisons(self) -> list[PairedComparison]:
        """Each function against its baseline at every load level, block by block (`paired`)."""
        return compare_study_paired(self.cells, self.plan.baselines())

    def unpaired_comparisons(self) -> list[Comparison]:
        """The same arms with their repetitions taken as independent (the bootstrap of the difference
        of means): kept in study.json to show what pairing gains, never used for a verdict."""
        return compare_study(self.cells, self.plan.baselines(), seed=self.plan.seed)

    def resolution(self, comparisons: list[PairedComparison] | None = None) -> list[ResolutionRow]:
        """Per load level and metric, the smallest change every comparison could call significant.

        A comparison whose block differences are all 0 (no error in any cell) has an interval of no
        width: it measured no spread, so it states no resolution and is left out."""
        comparisons = self.comparisons() if comparisons is None else comparisons
        return study_resolution([c for c in comparisons if any(d != 0.0 for d in c.differences)])

    def targets(self, comparisons: list[PairedComparison] | None = None) -> list[TargetRow]:
        """The plan's half-width targets against the widest intervals (none without targets)."""
        targets = study_targets(self.plan.target_halfwidth)
        if not targets:
            return []
        comparisons = self.comparisons() if comparisons is None else comparisons
        return target_rows(comparisons, targets, blocks_done=self.blocks_done, budget=self.budget)

    def calibration(self) -> AACalibration | None:
        """For an A/A study with at least 2 blocks: its false-positive rate and interval coverage."""
        if not self.plan.calibrate or self.blocks_done < MIN_BLOCKS_FOR_INTERVAL:
            return None
        first, second = (f.arm_name for f in self.plan.functions)
        return calibrate_aa(self.cells, first, second, sub_study_blocks=calibration_sub_study_blocks(self.blocks_done))

    def capacity_lines(self) -> list[CapacityLine]:
        """The capacity table: each arm's knee and its change against its baseline's."""
        return capacity_lines(self.capacity, self.plan.baselines())

    def arm(self, function: str, rate: float) -> tuple[list[CellSummary], bool]:
        """The cells of one function at one load level that the statistics use, and whether they
        are invalid ones used for want of valid ones (see `compare.trusted_cells`)."""
        return trusted_cells(
            [c for c in self.cells if c.function == function and c.rate == rate and not c.not_supported]
        )

    def not_supported(self) -> dict[str, str]:
        """The arms that could not be put in force in their topology, with why (first cell's reason)."""
        found: dict[str, str] = {}
        for cell in self.cells:
            if cell.not_supported:
                found.setdefault(cell.function, cell.not_supported)
        return found

    def replica_counts(self, function: str, rate: float) -> dict[str, dict[str, int]]:
        """What each replica answered over the cells `arm` uses, summed, by service."""
        summed: dict[str, dict[str, int]] = {}
        for cell in self.arm(function, rate)[0]:
            for service, counts in cell.replicas.items():
                for name, count in counts.items():
                    summed.setdefault(service, {}).setdefault(name, 0)
                    summed[service][name] += count
        return summed

    def merged_latency(self, function: str, rate: float) -> LatencyHistogram:
        """The repetitions of one function at one load level (those `arm` uses), merged exactly."""
        merged = LatencyHistogram()
        for cell in self.arm(function, rate)[0]:
            if cell.histogram:
                merged.add(cell.latency())
        return merged


def calibration_sub_study_blocks(blocks: int) -> int:
    """The size of an A/A study's sub-studies: as many blocks as a budgeted study runs at least
    (`MIN_BLOCKS_BEFORE_STOP`), so the coverage is that of the intervals studies report, and never more
    than half the blocks, so there are sub-studies to count."""
    return max(min(MIN_BLOCKS_BEFORE_STOP, blocks // 2), MIN_BLOCKS_FOR_INTERVAL)
