"""Running a study: every cell of a study plan, one function in force at a time, then the comparisons.

For each cell (in the plan's interleaved order) the mesh is switched to the cell's function (and, for a
plan listing topologies, the local testbed's proxies to the cell's topology; a function with no meaning
there is not run, its cell marked "not supported"), given a moment to settle, and one run is executed
against its ingress (its gRPC ingress for a scenario of gRPC methods); the run's SMP files go into the cell's
own folder. After every cell `study.json` is rewritten, so an interrupted study keeps what it
measured. At the end each function is compared with its baseline within blocks (`results.paired`)
and `index.html` is written.

A study runs in rounds: one repetition at every load level (a block per level). Without a time budget
it runs the plan's repetitions. With one (`budget`), after each round `results.sequential` decides
whether another round is needed (an interval still wider than its target) and fits in the time left;
the decisions go into the study's result.

One Redis serves every cell (a private redis-server unless a URL is given), and with a private one,
long-lived local workers serve every cell too, so a cell pays only for its run, not for starting
Redis and an interpreter again. Where the machine has the CPUs for it, the generator and the local
mesh are kept on separate CPUs (`cpu_pinning`).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import time
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from ..errors import PlanError, RunError, TestbedError, UsageError
from ..pipeline.wire import DEFAULT_RESULTS_TTL_S
from ..results.compare import CellSummary
from ..results.outputs import write_study_outputs
from ..results.study_budget import RoundDecision
from ..results.study_result import StudyResult
from ..scenarios.durations import format_duration
from ..scenarios.files import calls_grpc_base
from ..scenarios.study_plan import StudyCell, StudyPlan, placeholder_base_url
from ..worker.engine_process import check_before_load
from .cpu_pinning import CpuPinning, CpuSplit, pin_process_tree, plan_pinning
from .local_workers import cut_lifeline, spawn_worker, stop_workers
from .mesh.base import MeshAdapter, SupportLevel

if TYPE_CHECKING:
    from .k8s_placement import KubernetesFleet
    from .mesh.prometheus import PrometheusSource

#: What a cell costs beyond its warm-up, measured part and settle time: applying the function
#: (0.3-0.5 s), the run's common start lead (1 s), collecting the last records and writing the run's
#: files. Measured 1.6 s per cell on the local testbed, 2 cores shared with other work.
CELL_OVERHEAD_S = 2.0
#: Starting and stopping the local testbed once per study.
TESTBED_START_S = 5.0
#: With a Redis given by the user there are no study-long workers: each cell starts its own.
WORKER_START_S = 1.5
#: Scheduling priority of the study's workers (below 0: ahead of the testbed's processes).
WORKER_NICENESS = -5
#: Kept free at the end of a budget for the last files and stopping the testbed.
BUDGET_FINISH_S = 5.0


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


def check_functions(plan: StudyPlan, mesh: MeshAdapter) -> None:
    """Refuse a plan naming a function the mesh cannot apply (or, on the local testbed, a parameter
    it does not take), before any cell runs rather than in the middle of the study."""
    from .mesh.local import LocalTestbedMesh

    offered = mesh.functions()
    if plan.topologies:
        if not isinstance(mesh, LocalTestbedMesh):
            raise PlanError(f"topologies: {mesh.name} has no topologies to switch; remove topologies: from the plan")
        from ..testbed import TOPOLOGIES

        for topology in plan.topologies:
            if topology not in TOPOLOGIES:
                raise PlanError(f"topologies: {topology!r} is not a testbed topology; use {', '.join(TOPOLOGIES)}")
    for function in plan.functions:
        if function.name not in offered:
            raise PlanError(
                f"function {function.name!r} is not offered by {mesh.name}; use one of: {', '.join(offered)}"
            )
        if isinstance(mesh, LocalTestbedMesh):
            from ..testbed import PROFILES, TestbedFailure

            try:
                PROFILES[function.name].resolve(function.params)
            except TestbedFailure as exc:
                raise PlanError(f"functions: {exc}; fix the study plan") from exc
        else:  # a mesh that cannot express the function is a "not supported" cell, a bad parameter an error
            try:
                mesh.support(function.name, dict(function.params))
            except UsageError as exc:
                raise PlanError(f"functions: {exc}; fix the study plan") from exc


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


# -- the session: mesh, Redis, workers and CPUs for every cell --------------------------------------


class StudySession:
    """What every cell of a study runs on: the mesh (the local testbed unless given), one Redis, the
    study-long workers (with a private Redis), and the CPU split. A context manager: leaving it
    stops what it started and puts back what it found (a testbed already running keeps running, with
    its function of before in force)."""

    def __init__(self, plan: StudyPlan, options: StudyOptions) -> None:
        from .mesh.local import LocalTestbedMesh

        self.plan = plan
        self.options = options
        self.own_testbed: LocalTestbedMesh | None = None
        mesh = options.mesh
        if mesh is None:
            self.own_testbed = mesh = LocalTestbedMesh()
        self.mesh: MeshAdapter = mesh
        # Its processes run on this machine, so they can be pinned (whoever started it).
        self.local_testbed = mesh if isinstance(mesh, LocalTestbedMesh) else None
        self.pinning: CpuPinning = plan_pinning(
            plan.workers,
            enabled=options.pin_cpus,
            local_mesh=self.local_testbed is not None,
            split=options.cpu_split,
        )
        self.redis_url = options.redis_url or ""
        self.grpc_scenario = False
        self.workers: StudyWorkers | None = None
        self._cleanup = ExitStack()

    def __enter__(self) -> StudySession:
        try:
            self._start()
        except BaseException:
            self._cleanup.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._cleanup.close()

    def _start(self) -> None:
        check_functions(self.plan, self.mesh)
        # A cell's locustfile, imported once before any cell runs (the host is not used by the check).
        check_before_load(self.plan.cell_plan(self.plan.cells()[0], placeholder_base_url(self.plan.scenario)))
        # A scenario of gRPC methods goes to the mesh's gRPC ingress, any other to its HTTP one.
        self.grpc_scenario = calls_grpc_base(self.plan.scenario)
        if self.grpc_scenario and not hasattr(type(self.mesh), "grpc_url"):
            raise PlanError(f"scenario {self.plan.scenario}: {self.mesh.name} offers no gRPC ingress to send it to")
        self.options.out_dir.mkdir(parents=True, exist_ok=True)
        cleanup = self._cleanup
        if self.local_testbed is None:
            cleanup.callback(self.mesh.remove)  # what meshload applied in the cluster goes with the study
        if self.own_testbed is not None:
            before = self.own_testbed.status()
            if before.get("running"):
                # Someone's testbed was up already: leave it up, with its function back in force.
                cleanup.callback(
                    self.own_testbed.apply, before["function"], before.get("params"), before.get("topology")
                )
            else:
                # The first cell's apply() starts the testbed; stop it whatever happens.
                cleanup.callback(self.own_testbed.down)
        split = self.pinning.split
        if split is not None:
            # The coordinator merges the workers' records: it belongs to the generator's side. Left
            # as it was found afterwards, and so is a testbed that outlives the study.
            own = os.sched_getaffinity(0)
            cleanup.callback(self._pin_testbed, own)
            cleanup.callback(pin_process_tree, os.getpid(), own)
            pin_process_tree(os.getpid(), split.generator)
        if self.options.redis_url is None:
            from .redis_server import PrivateRedis

            redis_server = PrivateRedis()
            self.redis_url = redis_server.start()
            cleanup.callback(redis_server.stop)
            if split is not None:
                pin_process_tree(_redis_pid(self.redis_url), split.generator)
            self.workers = StudyWorkers(
                self.redis_url,
                self.plan.workers,
                self.options.out_dir / "workers",
                cpus=split.generator if split is not None else None,
            )
            cleanup.callback(self.workers.stop)
            self.workers.start()
        if self.options.kubernetes is not None:
            from .k8s_placement import fleet_held

            # Scaled once for the whole study (each cell then waits for its idle workers).
            cleanup.enter_context(fleet_held(self.plan.workers, self.options.kubernetes))

    def apply(self, cell: StudyCell) -> None:
        """Put the cell's function in force (and its processes on the mesh's CPUs), then settle."""
        _apply(self.mesh, cell)
        self.pin_mesh()
        if self.plan.settle_s:
            time.sleep(self.plan.settle_s)

    def pin_mesh(self) -> None:
        """Put every process of the local testbed on the mesh's CPUs (its proxies restart on apply)."""
        if self.pinning.split is not None:
            self._pin_testbed(self.pinning.split.mesh)

    def mesh_pids(self) -> list[int]:
        """The local testbed's processes (none for a mesh elsewhere)."""
        if self.local_testbed is None:
            return []
        return [pid for pids in self.local_testbed.testbed.pids_by_kind().values() for pid in pids]

    def _pin_testbed(self, cpus: Iterable[int]) -> None:
        for pid in self.mesh_pids():
            pin_process_tree(pid, cpus)

    def run_cell(self, cell: StudyCell, out_dir: Path) -> CellSummary:
        """Apply the cell's function and run it; a failed run is kept as an invalid cell with its
        reason and no figures, so one failure does not throw away the rest of the study."""
        from .run import RunOptions, execute_run

        arm = cell.function.arm_name
        refusal = self.refusal(cell)
        if refusal:
            # Not a failure: the function has no meaning there. Kept, marked, and left out of every comparison.
            return CellSummary(
                function=arm,
                rate=cell.rate,
                repetition=cell.repetition,
                order=cell.order,
                run_id="",
                valid=False,
                validity=[f"not supported: {refusal}"],
                topology=cell.function.topology or "",
                not_supported=refusal,
            )
        self.apply(cell)
        run_dir = out_dir / "runs" / cell.slug
        run_options = RunOptions(
            workers=self.plan.workers,
            redis_url=self.redis_url,
            out_dir=run_dir,
            live=False,
            mesh=self.mesh,
            prometheus=self.options.prometheus,
            placement="k8s" if self.plan.kubernetes_workers else "fleet" if self.workers is not None else "auto",
            kubernetes=self.options.kubernetes,
            # Not kept in a private Redis, which goes with the study.
            results_ttl_s=self.options.results_ttl_s if self.options.redis_url is not None else 0.0,
        )
        try:
            if self.workers is not None:
                self.workers.wait_until_idle()
            result = execute_run(self.plan.cell_plan(cell, self.base_url()), run_options)
        except RunError as exc:
            return CellSummary(
                function=arm,
                rate=cell.rate,
                repetition=cell.repetition,
                order=cell.order,
                run_id="",
                valid=False,
                validity=[f"the run failed: {exc}"],
                topology=cell.function.topology or "",
            )
        return CellSummary.from_run(
            result,
            function=arm,
            topology=cell.function.topology or "",
            rate=cell.rate,
            repetition=cell.repetition,
            order=cell.order,
            run_dir=str(run_dir.relative_to(out_dir)),
        )

    def refusal(self, cell: StudyCell) -> str:
        """Why the cell's function cannot be put in force in the cell's topology, or by a mesh in a
        cluster that cannot express it or already has it in its baseline ("" when it can)."""
        topology = cell.function.topology
        if self.local_testbed is None:
            support = self.mesh.support(cell.function.name, dict(cell.function.params))
            if support.applicable:
                return ""
            if support.level is SupportLevel.IN_BASELINE:
                return f"{self.mesh.name}: already in its baseline ({support.reason})"
            return f"{self.mesh.name}: {support.reason}"
        if topology is None:
            return ""
        support = self.local_testbed.support(cell.function.name, dict(cell.function.params), topology)
        return "" if support.applicable else support.reason

    def base_url(self) -> str:
        """Where the cell's scenario is sent: the mesh's gRPC ingress for gRPC methods, else its HTTP one."""
        if not self.grpc_scenario:
            return self.mesh.ingress_url
        return str(self.mesh.grpc_url)  # type: ignore[attr-defined]  # checked when the session started


def _redis_pid(redis_url: str) -> int:
    import redis

    with redis.Redis.from_url(redis_url) as client:
        return int(client.info("server")["process_id"])


def _apply(mesh: MeshAdapter, cell: StudyCell) -> None:
    """Put the cell's function in force; a mesh that failed half way is restarted and tried once more.

    On a shared machine a local proxy can lose a race for its port while restarting; a clean restart
    of the testbed then gives it new ones. A second failure is the user's to see.
    """
    from .mesh.local import LocalTestbedMesh

    def apply() -> None:
        if isinstance(mesh, LocalTestbedMesh):
            mesh.apply(cell.function.name, dict(cell.function.params), cell.function.topology)
        else:
            mesh.apply(cell.function.name, dict(cell.function.params))

    try:
        apply()
    except TestbedError:
        down = getattr(mesh, "down", None)
        if down is None:
            raise
        down()
        apply()


# -- workers -----------------------------------------------------------------------------------


class StudyWorkers:
    """Long-lived local workers serving every cell of a study from the study's private Redis.

    A worker spawned per cell would cost each cell its interpreter start (about 1.5 s on 2 busy
    cores); these start once, go back to idle after each run, and are stopped with the study. A
    worker that died is started again before the next cell.
    """

    #: How long workers may take to start, or to become idle again after a run.
    READY_TIMEOUT_S = 30.0
    #: A worker whose study stopped giving it work leaves by itself after this long.
    IDLE_TIMEOUT_S = 120.0

    def __init__(self, redis_url: str, count: int, log_dir: Path, *, cpus: tuple[int, ...] | None = None) -> None:
        self.redis_url = redis_url
        self.ids = [f"study-{os.getpid()}-w{index}" for index in range(count)]
        self.log_dir = log_dir
        self.cpus = cpus  # the generator's CPUs, when the study pins them
        self._processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        for worker_id in self.ids:
            self._spawn(worker_id)
        self.wait_until_idle()

    def _spawn(self, worker_id: str) -> None:
        previous = self._processes.get(worker_id)
        if previous is not None:
            cut_lifeline(previous)  # it exited; its lifeline goes with it
        # The generator shares the cores with the mesh it measures; when it is scheduled late, its
        # lag lands in every corrected latency. Ahead of the proxies, it sends on time.
        self._processes[worker_id] = spawn_worker(
            self.redis_url,
            worker_id,
            self.log_dir / f"{worker_id}.log",
            once=False,
            idle_timeout_s=self.IDLE_TIMEOUT_S,
            exit_with_parent=True,  # the study's Redis is private: workers leave with the study
            niceness=WORKER_NICENESS,
        )
        if self.cpus is not None:
            # Pinned as soon as it exists: the threads it starts later inherit the CPUs.
            pin_process_tree(self._processes[worker_id].pid, self.cpus)

    def pids(self) -> list[int]:
        return [process.pid for process in self._processes.values()]

    def wait_until_idle(self) -> None:
        """Block until every worker is registered and idle (restarting any that exited)."""
        import redis

        from .placement import idle_fleet_workers

        deadline = time.monotonic() + self.READY_TIMEOUT_S
        with redis.Redis.from_url(self.redis_url) as client:
            while True:
                for worker_id, process in list(self._processes.items()):
                    if process.poll() is not None:
                        self._spawn(worker_id)
                idle = set(idle_fleet_workers(client))
                if idle.issuperset(self.ids):
                    return
                if time.monotonic() > deadline:
                    raise RunError(
                        f"the study's workers were not ready within {self.READY_TIMEOUT_S:g}s; "
                        f"see the logs in {self.log_dir}"
                    )
                time.sleep(0.02)

    def stop(self) -> None:
        stop_workers(self._processes.values())
        self._processes.clear()


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
