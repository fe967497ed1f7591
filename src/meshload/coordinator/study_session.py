"""What every cell of a study runs on (`StudySession`), and running one cell there: the cell's
function put in force on the mesh (or the cell marked "not supported"), then one run against the
mesh's ingress, kept as the cell's summary whether it succeeded or failed."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from ..errors import PlanError, RunError
from ..interrupts import Interrupted
from ..results.cell_summary import CellSummary
from ..scenarios.files import calls_grpc_base
from ..scenarios.study_plan import StudyCell, StudyPlan, placeholder_base_url
from ..worker.engine_process import check_before_load
from .cpu_pinning import CpuPinning, pin_process_tree, plan_pinning
from .mesh.base import MeshAdapter, SupportLevel
from .study_mesh import apply_function, check_functions
from .study_workers import StudyWorkers

if TYPE_CHECKING:
    from ..results.run_result import RunResult
    from ..scenarios.plan import Plan
    from .study import StudyOptions


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
        apply_function(self.mesh, cell)
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
        refusal = self.refusal(cell)
        if refusal:
            # Not a failure: the function has no meaning there. Kept, marked, and left out of every comparison.
            return _without_figures(cell, f"not supported: {refusal}", not_supported=refusal)
        self.apply(cell)
        run_dir = out_dir / "runs" / cell.slug
        try:
            result = self.execute(self.plan.cell_plan(cell, self.base_url()), run_dir)
        except RunError as exc:
            return _without_figures(cell, f"the run failed: {exc}")
        return CellSummary.from_run(
            result,
            function=cell.function.arm_name,
            topology=cell.function.topology or "",
            rate=cell.rate,
            repetition=cell.repetition,
            order=cell.order,
            run_dir=str(run_dir.relative_to(out_dir)),
        )

    def execute(self, plan: Plan, run_dir: Path | None) -> RunResult:
        """One run on the study's Redis and workers, its files in `run_dir`; an interrupted run
        stops the study (its figures stay in its folder)."""
        from .run import RunOptions, execute_run

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
        if self.workers is not None:
            self.workers.wait_until_idle()
        result = execute_run(plan, run_options)
        if result.interrupted:
            raise Interrupted(signal.Signals[result.interrupted])
        return result

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


def _without_figures(cell: StudyCell, reason: str, *, not_supported: str = "") -> CellSummary:
    """A cell kept with its reason and no figures: it did not run, or its run failed."""
    return CellSummary(
        function=cell.function.arm_name,
        rate=cell.rate,
        repetition=cell.repetition,
        order=cell.order,
        run_id="",
        valid=False,
        validity=[reason],
        topology=cell.function.topology or "",
        not_supported=not_supported,
    )
