"""Running a study: every cell of a study plan, one function in force at a time, then the comparisons.

For each cell (in the plan's interleaved order) the mesh is switched to the cell's function (and, for a
plan listing topologies, the local testbed's proxies to the cell's topology; a function with no meaning
there is not run, its cell marked "not supported"), given a moment to settle, and one run is executed
against its ingress (its gRPC ingress for a scenario of gRPC methods); the run's SMP files go into the cell's
own folder. After every cell `study.json` is rewritten, so an interrupted study keeps what it
measured. At the end each function is compared with its baseline within blocks (`results.paired`)
and `index.html` is written. A plan with `find_max:` then searches each arm's knee, the highest
rate meeting its objective (`study_knee`), and reports it as a capacity table.

A study runs in rounds: one repetition at every load level (a block per level). Without a time budget
it runs the plan's repetitions. With one (`budget`), after each round `results.sequential` decides
whether another round is needed (an interval still wider than its target) and fits in the time left;
the decisions go into the study's result.

One Redis serves every cell (a private redis-server unless a URL is given), and with a private one,
long-lived local workers serve every cell too, so a cell pays only for its run, not for starting
Redis and an interpreter again. Where the machine has the CPUs for it, the generator and the local
mesh are kept on separate CPUs (`cpu_pinning`).

This module is the study's loop of rounds and its budget; one cell runs in a `study_session`
(functions put in force by `study_mesh`, on `study_workers`), and `study_timing` estimates the
study's duration and keeps its progress.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UsageError
from ..pipeline.wire import DEFAULT_RESULTS_TTL_S
from ..results.cell_summary import CellSummary
from ..results.outputs import write_study_outputs
from ..results.study_budget import RoundDecision
from ..results.study_result import StudyResult
from ..scenarios.study_plan import StudyCell, StudyPlan
from .cpu_pinning import CpuSplit
from .mesh.base import MeshAdapter
from .study_knee import knee_objective, search_knees
from .study_session import StudySession
from .study_timing import (
    BUDGET_FINISH_S,
    StudyProgress,
    budget_rounds,
    cell_estimate_s,
    check_budget,
    estimated_duration_s,
)

if TYPE_CHECKING:
    from ..scenarios.study_arms import FunctionSpec
    from .find_max import Step
    from .k8s_placement import KubernetesFleet
    from .mesh.prometheus import PrometheusSource


@dataclass
class StudyOptions:
    """How to run a study (the plan says what to run)."""

    out_dir: Path
    redis_url: str | None = None  # None: a private redis-server for the whole study
    mesh: MeshAdapter | None = None  # None: the local testbed, started and stopped by the study
    # Called after every cell with the cell's summary and how many cells are done.
    on_cell: Callable[[CellSummary, StudyProgress], None] | None = None
    # Called before every cell (e.g. to print what is about to run).
    on_cell_start: Callable[[StudyCell, StudyProgress], None] | None = None
    # Called after every round of a budgeted study with the decision taken.
    on_round: Callable[[RoundDecision, StudyProgress], None] | None = None
    # Keep the generator and a local mesh on separate CPUs when the machine has enough of them.
    pin_cpus: bool = True
    # A given split of the CPUs (None: decided from the CPUs this process may use).
    cpu_split: CpuSplit | None = None
    # A plan with `workers: k8s:N`: the fleet (None: from the environment, as the chart sets it).
    kubernetes: KubernetesFleet | None = None
    # With `redis_url`: how long each cell's files stay in that Redis (`meshload results get`); 0: not kept.
    results_ttl_s: float = DEFAULT_RESULTS_TTL_S
    # Read each cell's mesh CPU and memory from this Prometheus (None: the mesh's own sampler).
    prometheus: PrometheusSource | None = None
    # A plan with `find_max:`: called before each arm's knee search, and after each of its steps.
    on_knee_arm: Callable[[FunctionSpec], None] | None = None
    on_knee_step: Callable[[FunctionSpec, Step], None] | None = None


def run_study(plan: StudyPlan, options: StudyOptions) -> StudyResult:
    """Run every cell of `plan`, compare, and write the study's files into `options.out_dir`.

    Without `options.mesh` the local testbed is used: started and stopped by the study, or, when it
    was already running, left running with its function of before back in force.
    """
    from .run_folders import reap_leftovers

    if plan.kubernetes_workers:
        from .k8s_placement import KubernetesFleet

        if options.redis_url is None:
            raise UsageError(
                "workers: k8s:N in the study plan: give the fleet's Redis (--redis URL, or MESHLOAD_REDIS)"
            )
        options = dataclasses.replace(options, kubernetes=options.kubernetes or KubernetesFleet.from_environment())
    started_s, started_unix_ms = time.monotonic(), int(time.time() * 1000)
    check_budget(plan, private_redis=options.redis_url is None)
    if plan.find_max is not None:
        knee_objective(plan)  # a bad objective is one line before any load
    reap_leftovers()
    with StudySession(plan, options) as session:
        study = StudyResult.start(
            plan,
            environment={**study_environment(session.mesh), "cpu_pinning": session.pinning.describe()},
            estimated_duration_s=estimated_duration_s(plan, private_redis=options.redis_url is None),
        )
        study.started_unix_ms = started_unix_ms  # the budget counts from here, Redis and workers included
        if plan.budget_s is not None:
            study.rounds = 1  # a budgeted study adds its rounds one at a time
        try:
            _run_rounds(plan, study, session, options, started_s)
            if plan.find_max is not None:
                knees = search_knees(
                    plan, session, options.out_dir, on_arm=options.on_knee_arm, on_step=options.on_knee_step
                )
                for row in knees:
                    study.capacity.append(row)
                    write_study_outputs(study, options.out_dir, html=False)
        finally:
            # Before the session stops anything: the files are written whatever happened.
            study.finish(environment_after=_load_average())
            write_study_outputs(study, options.out_dir)
    return study


def _run_rounds(
    plan: StudyPlan, study: StudyResult, session: StudySession, options: StudyOptions, started_s: float
) -> None:
    from ..results.sequential import MIN_BLOCKS_BEFORE_STOP

    private_redis = options.redis_url is None
    progress = StudyProgress(
        total=study.planned_cells if plan.budget_s is None else budget_rounds(plan) * plan.cells_per_round,
        started_monotonic_s=started_s,
        cell_s=cell_estimate_s(plan, private_redis=private_redis),
        budget_s=plan.budget_s,
    )
    rounds_started_s = progress.elapsed_s
    repetition = 0
    while repetition < study.rounds:
        repetition += 1
        for cell in plan.round_cells(repetition, first_order=len(study.cells)):
            if options.on_cell_start is not None:
                options.on_cell_start(cell, progress)
            summary = session.run_cell(cell, options.out_dir)
            study.cells.append(summary)
            progress.done += 1
            # Rewritten after every cell: an interrupted study keeps every cell it finished.
            write_study_outputs(study, options.out_dir, html=False)
            if options.on_cell is not None:
                options.on_cell(summary, progress)
        if study.budget is None:
            continue
        round_s = (progress.elapsed_s - rounds_started_s) / repetition
        decision = _decide(plan, study, repetition, round_s, progress.elapsed_s, MIN_BLOCKS_BEFORE_STOP)
        study.budget.round_s = round_s
        study.budget.decisions.append(decision)
        if decision.add:
            study.rounds += 1
            progress.total = max(progress.total, study.planned_cells)
        else:
            study.budget.stop_reason = decision.reason
            progress.total = progress.done
        if options.on_round is not None:
            options.on_round(decision, progress)


def _decide(
    plan: StudyPlan, study: StudyResult, rounds_done: int, round_s: float, elapsed_s: float, min_blocks: int
) -> RoundDecision:
    """After a round of a budgeted study: another round, or stop (see `results.sequential`)."""
    from ..results.sequential import decide_more_blocks
    from ..results.study_budget import study_targets

    assert plan.budget_s is not None
    remaining_s = plan.budget_s - elapsed_s - BUDGET_FINISH_S
    targets = study_targets(plan.target_halfwidth)
    if not targets:
        # No precision asked for: the budget buys as many blocks as fit.
        fits = remaining_s >= round_s
        reason = "another round fits in the budget" if fits else f"time budget spent after {rounds_done} blocks"
        return RoundDecision(rounds_done, round(elapsed_s, 1), fits, reason)
    decision = decide_more_blocks(
        study.comparisons(),
        targets,
        blocks_done=rounds_done,
        round_s=round_s,
        remaining_s=remaining_s,
        min_blocks=max(min_blocks, plan.repetitions),
    )
    return RoundDecision(rounds_done, round(elapsed_s, 1), decision.add_blocks, decision.reason)


# -- environment --------------------------------------------------------------------------------


def study_environment(mesh: MeshAdapter | None = None) -> dict[str, object]:
    """What the numbers depend on besides the mesh: the machine, its load before the study, the
    versions of Python, HAProxy and meshload (load after the study is added at the end)."""
    import psutil

    from ..testbed import haproxy_version
    from .environment import describe_environment

    environment = describe_environment()
    environment["load_average_before"] = environment.pop("load_average", _load_average())
    environment["cpu_cores_physical"] = psutil.cpu_count(logical=False) or 0
    environment["haproxy_version"] = haproxy_version()
    if mesh is not None:
        environment["mesh"] = mesh.name
    return environment


def _load_average() -> list[float]:
    """1, 5 and 15 minute load averages (empty where the system has none)."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return []
