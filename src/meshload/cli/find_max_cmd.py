"""`meshload run --find-max`: the knee search driven from the command line (the search itself is
`coordinator/find_max.py`): checked before any load, each step shown as it ends, the rate and its
bracket at the end."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from .. import terminal
from ..errors import UsageError
from .run_plan import describe_plan

if TYPE_CHECKING:
    from ..coordinator.run import RunOptions
    from ..scenarios.plan import Plan

#: `--find-max` without `--duration`: how long each step runs.
FIND_MAX_STEP_DURATION = "10s"


def search_max_rate(plan: Plan, options: RunOptions, slo: str | None, errors: str | None, precision: float) -> None:
    """`--find-max`: checked before any load, then the search; exit 1 when no rate met the SLO."""
    from ..coordinator.find_max import Step, check_searchable, find_max
    from ..scenarios.slo import parse_slo

    if slo is None:
        raise UsageError("--find-max: give the objective to meet, e.g. --slo 'p99<50ms'")
    objective = parse_slo(slo, errors)
    check_searchable(plan, precision)
    terminal.info(f"find-max {options.run_id}: {objective.describe()}, from {describe_plan(plan)}")

    def show(step: Step) -> None:
        terminal.info(
            f"  {step.rate:10.1f} req/s  p{objective.percentile:g} {step.percentile_ms:8.2f} ms  "
            f"errors {step.error_fraction * 100:6.3f}%  completed {step.completed_fraction * 100:5.1f}%  "
            + ("pass" if step.passed else "FAIL")
        )

    knee = find_max(plan, options, objective, precision=precision, on_step=show)
    if not knee.rate:
        terminal.warning(f"no rate met {objective.describe()} (the lowest tried failed)")
        raise typer.Exit(1)
    bracket = (
        f"the knee in [{knee.rate:.1f}, {knee.failing_rate:.1f}) req/s"
        if knee.failing_rate
        else "no higher rate was found failing"
    )
    terminal.result(
        f"max rate {knee.rate:.1f} req/s meeting {objective.describe()} ({bracket}); steps in {options.out_dir}"
    )
