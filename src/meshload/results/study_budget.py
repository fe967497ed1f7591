"""What a study's time budget and half-width targets came to: the rounds it ran, why it stopped, and
for each target whether it was reached, and if not, why (the widest interval, and the blocks its
spread says it would need).

The coordinator decides round by round (`sequential.decide_more_blocks`) and records each decision
here (`BudgetOutcome`); the reports read the targets' final state from the study's comparisons
(`target_rows`), so a re-rendered report says the same as the study did when it ended.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..scenarios.durations import format_duration
from .cell_summary import METRIC_BY_KEY
from .charts import format_value
from .halfwidth_targets import HalfWidthTarget, parse_halfwidth_targets
from .paired import PairedComparison
from .sequential import target_status

#: The option name `target_halfwidth` errors carry when the text comes from a plan file.
PLAN_KEY = "target_halfwidth"


@dataclass
class RoundDecision:
    """After a round of blocks: whether another was added, and why."""

    round: int  # rounds (blocks per load level) done when deciding
    elapsed_s: float  # since the study started
    add: bool
    reason: str


@dataclass
class BudgetOutcome:
    """How a budgeted study used its time."""

    budget_s: float
    round_s: float = 0.0  # the mean measured duration of a round (the last estimate used)
    decisions: list[RoundDecision] = field(default_factory=list)
    stop_reason: str = ""  # the last decision's reason (empty while the study runs)

    @classmethod
    def from_dict(cls, data: dict) -> BudgetOutcome:
        return cls(
            budget_s=float(data["budget_s"]),
            round_s=float(data.get("round_s", 0.0)),
            decisions=[RoundDecision(**decision) for decision in data.get("decisions", [])],
            stop_reason=str(data.get("stop_reason", "")),
        )


@dataclass(frozen=True)
class TargetRow:
    """One half-width target as the reports show it."""

    written: str  # as the user wrote it: "p50=0.05ms"
    metric: str
    unit: str
    target: float
    reached: bool
    widest_half_width: float | None
    widest_function: str
    widest_rate: float
    blocks_done: int
    blocks_needed: int | None
    why: str  # one sentence: reached, or why not


def study_targets(text: str) -> tuple[HalfWidthTarget, ...]:
    """The targets of a plan's `target_halfwidth` (none when it is empty)."""
    return parse_halfwidth_targets(text, option=PLAN_KEY) if text.strip() else ()


def target_rows(
    comparisons: Sequence[PairedComparison],
    targets: Sequence[HalfWidthTarget],
    *,
    blocks_done: int,
    budget: BudgetOutcome | None,
) -> list[TargetRow]:
    """Each target against the widest interval of its metric over every function and load level."""
    rows = []
    for target in targets:
        status = target_status(comparisons, target)
        unit = METRIC_BY_KEY[target.metric].unit
        if status.widest_half_width is None:
            why = "no comparison of this metric has an interval (fewer than 2 usable blocks)"
        elif status.reached:
            why = f"widest ±{format_value(status.widest_half_width)} {unit} after {blocks_done} blocks"
        else:
            where = f"{status.widest_function} at {status.widest_rate:g} rps"
            need = (
                f"about {status.blocks_needed} blocks would reach it at the spread seen so far"
                if status.blocks_needed is not None
                else "the blocks it would need are unknown (a comparison has no spread yet)"
            )
            limit = (
                f"; {blocks_done} fitted in the budget of {format_duration(round(budget.budget_s))}" if budget else ""
            )
            why = (
                f"widest ±{format_value(status.widest_half_width)} {unit} ({where}) after {blocks_done} blocks: "
                f"{need}{limit}"
            )
        rows.append(
            TargetRow(
                written=target.written,
                metric=target.metric,
                unit=unit,
                target=target.half_width,
                reached=status.reached,
                widest_half_width=status.widest_half_width,
                widest_function=status.widest_function,
                widest_rate=status.widest_rate,
                blocks_done=blocks_done,
                blocks_needed=status.blocks_needed,
                why=why,
            )
        )
    return rows
