"""A study's result: its plan, its environment and every cell it ran, and the comparisons they give.

Its JSON form is `study_json` (`study.json`), its page `study_html` (`index.html`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..scenarios.study_plan import StudyPlan
from .compare import CellSummary, Comparison, compare_study, trusted_cells
from .histogram import LatencyHistogram


@dataclass
class StudyResult:
    """What a study measured: its plan, its environment and every cell, in run order."""

    plan: StudyPlan
    started_unix_ms: int
    ended_unix_ms: int = 0
    environment: dict[str, object] = field(default_factory=dict)
    cells: list[CellSummary] = field(default_factory=list)

    @classmethod
    def start(cls, plan: StudyPlan, *, environment: dict[str, object] | None = None) -> StudyResult:
        return cls(plan=plan, started_unix_ms=int(time.time() * 1000), environment=dict(environment or {}))

    def finish(self, *, environment_after: object = None) -> None:
        self.ended_unix_ms = int(time.time() * 1000)
        if environment_after is not None:
            self.environment["load_average_after"] = environment_after

    @property
    def complete(self) -> bool:
        return len(self.cells) == len(self.plan.cells())

    def comparisons(self) -> list[Comparison]:
        """Each function against its baseline at every load level (see `compare.compare_study`)."""
        return compare_study(self.cells, self.plan.baselines(), seed=self.plan.seed)

    def arm(self, function: str, rate: float) -> tuple[list[CellSummary], bool]:
        """The cells of one function at one load level that the statistics use, and whether they
        are invalid ones used for want of valid ones (see `compare.trusted_cells`)."""
        return trusted_cells([c for c in self.cells if c.function == function and c.rate == rate])

    def merged_latency(self, function: str, rate: float) -> LatencyHistogram:
        """The repetitions of one function at one load level (those `arm` uses), merged exactly."""
        merged = LatencyHistogram()
        for cell in self.arm(function, rate)[0]:
            if cell.histogram:
                merged.add(cell.latency())
        return merged
