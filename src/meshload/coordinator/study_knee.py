"""A study's capacity (`find_max:` in its plan): after the latency cells, each arm's knee, searched
with the arm's function (in its topology) in force, on the study's own mesh, Redis and workers.

The search is `find_max.KneeSearch`, run once per arm; each of its steps is a run of the study's
scenario at one rate (constant arrivals, the study's warm-up, the search's step), its files under
`knee/<arm>/step-NN-<rate>rps/`, the search's own `find_max.json` beside them. An arm whose function
cannot be put in force there is kept, marked "not supported", like its cells.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

from ..errors import UsageError
from ..results.run_result import RunResult
from ..results.study_capacity import CapacityRow
from ..scenarios.plan import Plan
from ..scenarios.slo import Slo, parse_slo
from ..scenarios.study_arms import FunctionSpec
from ..scenarios.study_plan import StudyCell, StudyPlan, knee_plan, placeholder_base_url
from .find_max import KneeSearch, Step, check_searchable
from .study_session import StudySession

KNEE_DIR = "knee"


def knee_objective(plan: StudyPlan) -> Slo:
    """The plan's objective, and its first search checked searchable: a UsageError line before any load."""
    spec = plan.find_max
    assert spec is not None
    slo = parse_slo(spec.slo, spec.errors, names=("find_max.slo", "find_max.errors"))
    try:
        check_searchable(knee_plan(plan, plan.functions[0], placeholder_base_url(plan.scenario)), spec.precision)
    except UsageError as exc:
        raise UsageError(f"find_max: {exc}") from exc
    return slo


def search_knees(
    plan: StudyPlan,
    session: StudySession,
    out_dir: Path,
    on_arm: Callable[[FunctionSpec], None] | None = None,
    on_step: Callable[[FunctionSpec, Step], None] | None = None,
) -> Iterator[CapacityRow]:
    """Every arm's knee, in the plan's order, each as soon as it is found (so an interrupted study
    keeps those it found); `on_arm` before each search, `on_step` after each step."""
    slo = knee_objective(plan)
    for order, function in enumerate(plan.functions):
        if on_arm is not None:
            on_arm(function)
        yield _search_arm(plan, session, out_dir, function, slo, order, on_step)


def _search_arm(
    plan: StudyPlan,
    session: StudySession,
    out_dir: Path,
    function: FunctionSpec,
    slo: Slo,
    order: int,
    on_step: Callable[[FunctionSpec, Step], None] | None,
) -> CapacityRow:
    spec = plan.find_max
    assert spec is not None
    cell = StudyCell(function, max(plan.load_levels), 1, order)
    topology = function.topology or ""
    refusal = session.refusal(cell)
    if refusal:
        return CapacityRow(function=function.arm_name, topology=topology, not_supported=refusal)
    session.apply(cell)
    folder = out_dir / KNEE_DIR / function.arm_name

    def run_step(step_plan: Plan, step_dir: Path | None) -> RunResult:
        return session.execute(step_plan, step_dir)

    search = KneeSearch(
        knee_plan(plan, function, session.base_url()),
        slo,
        run_step,
        out_dir=folder,
        precision=spec.precision,
        repeats=spec.repeats,
        max_rate=spec.max_rps if spec.max_rps is not None else 1e6,
        on_step=(lambda step: on_step(function, step)) if on_step is not None else None,
    )
    knee = search.run()
    return CapacityRow(
        function=function.arm_name,
        topology=topology,
        rate=knee.rate,
        failing_rate=knee.failing_rate,
        steps=[asdict(step) for step in knee.steps],
        folder=str(folder.relative_to(out_dir)),
    )
