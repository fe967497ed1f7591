"""How long a study takes, before and while it runs: each cell's and each round's estimate, the
rounds a time budget holds (a budget too short for one round is refused before anything starts), and
the running study's progress with an honest time-to-go."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..errors import PlanError
from ..scenarios.durations import format_duration
from ..scenarios.study_plan import StudyPlan

#: What a cell costs beyond its warm-up, measured part and settle time: applying the function
#: (0.3-0.5 s), the run's common start lead (1 s), collecting the last records and writing the run's
#: files. Measured 1.6 s per cell on the local testbed, 2 cores shared with other work.
CELL_OVERHEAD_S = 2.0
#: Starting and stopping the local testbed once per study.
TESTBED_START_S = 5.0
#: With a Redis given by the user there are no study-long workers: each cell starts its own.
WORKER_START_S = 1.5
#: Kept free at the end of a budget for the last files and stopping the testbed.
BUDGET_FINISH_S = 5.0


@dataclass
class StudyProgress:
    """Where a running study is: for progress lines and an honest time-to-go."""

    total: int
    done: int = 0
    started_monotonic_s: float = field(default_factory=time.monotonic)
    cell_s: float = 0.0  # planned seconds of a cell, overhead included
    budget_s: float | None = None  # a budgeted study ends by then, whatever its cell count says

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started_monotonic_s

    @property
    def remaining_s(self) -> float:
        """Time to go, from the cells measured so far (the planned estimate before the first)."""
        left = self.total - self.done
        estimate = left * (self.cell_s if self.done == 0 else self.elapsed_s / self.done)
        if self.budget_s is not None:
            estimate = min(estimate, max(self.budget_s - self.elapsed_s, 0.0))
        return estimate


def cell_estimate_s(plan: StudyPlan, *, private_redis: bool = True) -> float:
    """What one cell takes: its load, the settle time and each cell's overhead."""
    return plan.cell_s + plan.settle_s + CELL_OVERHEAD_S + (0.0 if private_redis else WORKER_START_S)


def round_estimate_s(plan: StudyPlan, *, private_redis: bool = True) -> float:
    """What one round (a block at every load level) takes."""
    return plan.cells_per_round * cell_estimate_s(plan, private_redis=private_redis)


def budget_rounds(plan: StudyPlan, *, with_testbed: bool = True, private_redis: bool = True) -> int:
    """How many rounds fit in the plan's budget at the estimated round duration (at least 1)."""
    if plan.budget_s is None:
        return plan.repetitions
    usable_s = plan.budget_s - BUDGET_FINISH_S - (TESTBED_START_S if with_testbed else 0.0)
    return max(int(usable_s // round_estimate_s(plan, private_redis=private_redis)), 1)


def estimated_duration_s(plan: StudyPlan, *, with_testbed: bool = True, private_redis: bool = True) -> float:
    """How long the study will take: its cells' load plus each cell's overhead, plus the testbed; for
    a budgeted study, the rounds that fit in the budget (it stops earlier when every target is met)."""
    rounds = budget_rounds(plan, with_testbed=with_testbed, private_redis=private_redis)
    return rounds * round_estimate_s(plan, private_redis=private_redis) + (TESTBED_START_S if with_testbed else 0.0)


def check_budget(plan: StudyPlan, *, private_redis: bool = True) -> None:
    """Refuse a budget that cannot hold even one round of blocks, before anything starts."""
    if plan.budget_s is None:
        return
    needed_s = round_estimate_s(plan, private_redis=private_redis) + TESTBED_START_S + BUDGET_FINISH_S
    if plan.budget_s < needed_s:
        raise PlanError(
            f"budget {format_duration(plan.budget_s)} is shorter than one round of blocks "
            f"({plan.cells_per_round} cells, about {format_duration(round(needed_s))} with the testbed's start); "
            "give a longer budget, or fewer functions or load levels"
        )
