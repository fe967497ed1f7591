"""Running a study: every cell of a study plan, one function in force at a time, then the comparisons.

For each cell (in the plan's interleaved order) the mesh is switched to the cell's function, given a
moment to settle, and one run is executed against its ingress; the run's SMP files go into the cell's
own folder. After every cell `study.json` is rewritten, so an interrupted study keeps what it
measured. At the end each function is compared with its baseline (`results.compare`) and `index.html`
is written.

One Redis serves every cell (a private redis-server unless a URL is given), and with a private one,
long-lived local workers serve every cell too, so a cell pays only for its run, not for starting
Redis and an interpreter again.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import PlanError, RunError, TestbedError, UsageError
from ..pipeline.wire import DEFAULT_RESULTS_TTL_S
from ..results.compare import CellSummary
from ..results.outputs import write_study_outputs
from ..results.study_result import StudyResult
from ..scenarios.study_plan import StudyCell, StudyPlan
from .local_workers import cut_lifeline, spawn_worker, stop_workers
from .mesh.base import MeshAdapter

if TYPE_CHECKING:
    from .k8s_placement import KubernetesFleet

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
    # A plan with `workers: k8s:N`: the fleet (None: from the environment, as the chart sets it).
    kubernetes: KubernetesFleet | None = None
    # With `redis_url`: how long each cell's files stay in that Redis (`meshload results get`); 0: not kept.
    results_ttl_s: float = DEFAULT_RESULTS_TTL_S


@dataclass
class StudyProgress:
    """Where a running study is: for progress lines and an honest time-to-go."""

    total: int
    done: int = 0
    started_monotonic_s: float = field(default_factory=time.monotonic)
    cell_s: float = 0.0  # planned seconds of load per cell

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started_monotonic_s

    @property
    def remaining_s(self) -> float:
        """Time to go, from the cells measured so far (the planned estimate before the first)."""
        left = self.total - self.done
        if self.done == 0:
            return left * (self.cell_s + CELL_OVERHEAD_S)
        return left * self.elapsed_s / self.done


def estimated_duration_s(plan: StudyPlan, *, with_testbed: bool = True, private_redis: bool = True) -> float:
    """How long the study will take: its cells' load plus each cell's overhead, plus the testbed."""
    per_cell_s = plan.cell_s + plan.settle_s + CELL_OVERHEAD_S + (0.0 if private_redis else WORKER_START_S)
    return len(plan.cells()) * per_cell_s + (TESTBED_START_S if with_testbed else 0.0)


def check_functions(plan: StudyPlan, mesh: MeshAdapter) -> None:
    """Refuse a plan naming a function the mesh cannot apply (or, on the local testbed, a parameter
    it does not take), before any cell runs rather than in the middle of the study."""
    from .mesh.local import LocalTestbedMesh

    offered = mesh.functions()
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


def run_study(plan: StudyPlan, options: StudyOptions) -> StudyResult:
    """Run every cell of `plan`, compare, and write the study's files into `options.out_dir`.

    Without `options.mesh` the local testbed is used: started and stopped by the study, or, when it
    was already running, left running with its function of before back in force.
    """
    from .mesh.local import LocalTestbedMesh
    from .run_folders import reap_leftovers

    if plan.kubernetes_workers:
        from .k8s_placement import KubernetesFleet

        if options.redis_url is None:
            raise UsageError(
                "workers: k8s:N in the study plan: give the fleet's Redis (--redis URL, or MESHLOAD_REDIS)"
            )
        options = dataclasses.replace(options, kubernetes=options.kubernetes or KubernetesFleet.from_environment())
    reap_leftovers()
    own_testbed = None
    mesh = options.mesh
    if mesh is None:
        own_testbed = mesh = LocalTestbedMesh()
    check_functions(plan, mesh)
    options.out_dir.mkdir(parents=True, exist_ok=True)
    study = StudyResult.start(plan, environment=study_environment(mesh))
    with ExitStack() as cleanup:
        if own_testbed is not None:
            before = own_testbed.status()
            if before.get("running"):
                # Someone's testbed was up already: leave it up, with its function back in force.
                cleanup.callback(own_testbed.apply, before["function"], before.get("params"))
            else:
                # The first cell's apply() starts the testbed; stop it whatever happens.
                cleanup.callback(own_testbed.down)
        workers = None
        redis_url = options.redis_url
        if redis_url is None:
            from .redis_server import PrivateRedis

            redis_server = PrivateRedis()
            redis_url = redis_server.start()
            cleanup.callback(redis_server.stop)
            workers = StudyWorkers(redis_url, plan.workers, options.out_dir / "workers")
            cleanup.callback(workers.stop)
            workers.start()
        if options.kubernetes is not None:
            from .k8s_placement import fleet_held

            # Scaled once for the whole study (each cell then waits for its idle workers).
            cleanup.enter_context(fleet_held(plan.workers, options.kubernetes))
        # Registered last, so it runs first: the files are written before anything is stopped.
        cleanup.callback(_finish, study, options.out_dir)
        _run_cells(plan, study, mesh, redis_url, workers, options)
    return study


def _finish(study: StudyResult, out_dir: Path) -> None:
    study.finish(environment_after=_load_average())
    write_study_outputs(study, out_dir)


def _run_cells(
    plan: StudyPlan,
    study: StudyResult,
    mesh: MeshAdapter,
    redis_url: str,
    workers: StudyWorkers | None,
    options: StudyOptions,
) -> None:
    from .run import RunOptions, execute_run

    cells = plan.cells()
    progress = StudyProgress(total=len(cells), cell_s=plan.cell_s)
    runs_dir = options.out_dir / "runs"
    for cell in cells:
        if options.on_cell_start is not None:
            options.on_cell_start(cell, progress)
        _apply(mesh, cell)
        if plan.settle_s:
            time.sleep(plan.settle_s)
        run_dir = runs_dir / cell.slug
        run_options = RunOptions(
            workers=plan.workers,
            redis_url=redis_url,
            out_dir=run_dir,
            live=False,
            mesh=mesh,
            placement="k8s" if plan.kubernetes_workers else "fleet" if workers is not None else "auto",
            kubernetes=options.kubernetes,
            results_ttl_s=options.results_ttl_s if options.redis_url is not None else 0.0,  # not in a private one
        )
        try:
            if workers is not None:
                workers.wait_until_idle()
            result = execute_run(plan.cell_plan(cell, mesh.ingress_url), run_options)
        except RunError as exc:
            # One failed cell (e.g. the worker died) must not throw away the rest of the study; it
            # is kept as an invalid cell with its reason and no figures.
            summary = CellSummary(
                function=cell.function.name,
                rate=cell.rate,
                repetition=cell.repetition,
                order=cell.order,
                run_id="",
                valid=False,
                validity=[f"the run failed: {exc}"],
            )
        else:
            summary = CellSummary.from_run(
                result,
                function=cell.function.name,
                rate=cell.rate,
                repetition=cell.repetition,
                order=cell.order,
                run_dir=str(run_dir.relative_to(options.out_dir)),
            )
        study.cells.append(summary)
        progress.done += 1
        # Rewritten after every cell: an interrupted study keeps every cell it finished.
        write_study_outputs(study, options.out_dir, html=False)
        if options.on_cell is not None:
            options.on_cell(summary, progress)


def _apply(mesh: MeshAdapter, cell: StudyCell) -> None:
    """Put the cell's function in force; a mesh that failed half way is restarted and tried once more.

    On a shared machine a local proxy can lose a race for its port while restarting; a clean restart
    of the testbed then gives it new ones. A second failure is the user's to see.
    """
    try:
        mesh.apply(cell.function.name, dict(cell.function.params))
    except TestbedError:
        down = getattr(mesh, "down", None)
        if down is None:
            raise
        down()
        mesh.apply(cell.function.name, dict(cell.function.params))


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

    def __init__(self, redis_url: str, count: int, log_dir: Path) -> None:
        self.redis_url = redis_url
        self.ids = [f"study-{os.getpid()}-w{index}" for index in range(count)]
        self.log_dir = log_dir
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
