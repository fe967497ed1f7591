"""`meshload study --find-max --slo ... [--errors ...]` (or `find_max:` in the plan): the options as
the plan's keys, and each arm's knee search shown as it goes (the search is `coordinator.study_knee`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import terminal
from ..errors import UsageError

if TYPE_CHECKING:
    from ..coordinator.find_max import Step
    from ..scenarios.study_arms import FunctionSpec
    from ..scenarios.study_plan import StudyPlan


def knee_overrides(find_max: bool, slo: str | None, errors: str | None) -> dict[str | tuple[str, ...], object]:
    """`--slo` and `--errors` as the plan's `find_max:` keys (checked with the plan, one line each)."""
    if (slo is not None or errors is not None) and not find_max:
        raise UsageError("--slo and --errors set the objective of --find-max; add --find-max")
    overrides: dict[str | tuple[str, ...], object] = {}
    if slo is not None:
        overrides[("find_max", "slo")] = slo
    if errors is not None:
        overrides[("find_max", "errors")] = errors
    return overrides


def check_knee_asked(plan: StudyPlan, *, find_max: bool) -> None:
    """`--find-max` with no objective, neither on the command line nor in the plan: one line."""
    if find_max and plan.find_max is None:
        raise UsageError("--find-max: give the objective to meet, e.g. --slo 'p99<50ms' (or find_max: in the plan)")


def describe_knee(plan: StudyPlan) -> str:
    """The objective of a plan's knee search, as written: "p99<50ms, errors <0.1%"."""
    spec = plan.find_max
    if spec is None:
        return ""
    return spec.slo + (f", errors {spec.errors}" if spec.errors else "")


def knee_arm_line(plan: StudyPlan) -> Callable[[FunctionSpec], None]:
    """Before each arm's search: what it looks for."""

    def show(function: FunctionSpec) -> None:
        terminal.info(f"capacity of {function.label}: the highest rate meeting {describe_knee(plan)}")

    return show


def knee_step_line(plan: StudyPlan) -> Callable[[FunctionSpec, Step], None]:
    """After each step: its rate, percentile, errors, what completed, and its verdict."""
    from ..scenarios.slo import parse_slo

    spec = plan.find_max
    percentile = parse_slo(spec.slo).percentile if spec is not None else 99.0

    def show(function: FunctionSpec, step: Step) -> None:
        terminal.info(
            f"    {step.rate:10.1f} req/s  p{percentile:g} {step.percentile_ms:8.2f} ms  "
            f"errors {step.error_fraction * 100:6.3f}%  completed {step.completed_fraction * 100:5.1f}%  "
            + ("pass" if step.passed else "FAIL")
        )

    return show
