"""One run, coordinated through Redis: get Redis and workers, then coordinate the run (`run_loop.py`:
hand each worker its share and one common start instant, collect and merge the interval records,
watch the workers' heartbeats, sample the mesh over the measured window), and write the reports.

On an external Redis a run is detached: its workers go on without the coordinator, and the run's
`wire.ResumeInfo` lets `meshload resume` (`resume.py`) reattach the same loop to it (`coordinate` with
`resume`), which first replays the whole records stream. `--checkpoint` rewrites the reports during
the run (`checkpoints.py`), marked partial.
"""

from __future__ import annotations

import shutil
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

import redis

from .. import interrupts
from ..errors import RunError, UsageError
from ..pipeline import wire
from ..results.run_result import RunResult
from ..scenarios.plan import Plan
from .live import LiveView
from .local_workers import check_local_worker_count
from .mesh.base import MeshAdapter
from .placement import Placement, Workers, place_workers
from .redis_server import PrivateRedis
from .run_folders import create_run_folder, reap_leftovers
from .run_keys import clear_run_keys
from .run_loop import Coordinator

if TYPE_CHECKING:
    from .k8s_placement import KubernetesFleet
    from .mesh.prometheus import PrometheusSource

#: What the coordinator does when a worker is lost: go on with the others (the run is degraded), or
#: stop every worker and fail the run.
OnWorkerLoss = Literal["continue", "abort"]


@dataclass
class RunOptions:
    """How to carry out a run (the plan says what to send). Checked when made (`UsageError`)."""

    workers: int = 1
    redis_url: str | None = None  # None: a private redis-server on a Unix socket, for this run only
    out_dir: Path | None = None  # where smp.json, fortio.json, histograms.hlog, report.html go
    on_worker_loss: OnWorkerLoss = "continue"
    metrics_port: int | None = None  # Prometheus endpoint with the live figures (0: any free port)
    metrics_address: str = "127.0.0.1"  # where it listens (0.0.0.0 in a pod, for the cluster's Prometheus)
    live: bool = True  # progress on stderr
    mesh: MeshAdapter | None = None  # sampled over the measured window
    prometheus: PrometheusSource | None = None  # read the mesh's CPU and memory from this Prometheus
    placement: Placement = "auto"  # auto: idle fleet workers if any, else local processes
    run_id: str | None = None  # None: a new id from the time and a random suffix
    kubernetes: KubernetesFleet | None = None  # placement k8s: the fleet (None: from the environment)
    # How long the run's files stay in the given Redis (`meshload results get`); 0: not kept. Never
    # kept in a private Redis, which goes with the run.
    results_ttl_s: float = wire.DEFAULT_RESULTS_TTL_S
    checkpoint_s: float = 0.0  # write the reports this often during the run, marked partial (0: never)

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise UsageError(f"--workers: {self.workers} is not a worker count; use 1 or more")
        if self.on_worker_loss not in get_args(OnWorkerLoss):
            raise UsageError(f"--on-worker-loss: {self.on_worker_loss!r} is not one of continue, abort")
        if self.placement not in get_args(Placement):
            raise UsageError(f"--placement: {self.placement!r} is not one of {', '.join(get_args(Placement))}")
        if self.placement == "k8s":
            from .k8s_placement import KubernetesFleet

            if self.redis_url is None:
                raise UsageError("--workers k8s:N: give the fleet's Redis (--redis URL, or MESHLOAD_REDIS)")
            self.kubernetes = self.kubernetes or KubernetesFleet.from_environment()
        if self.results_ttl_s < 0:
            raise UsageError(f"--results-ttl: {self.results_ttl_s:g}s is not a duration; use 0 (not kept) or more")
        if self.checkpoint_s < 0:
            raise UsageError(f"--checkpoint: {self.checkpoint_s:g}s is not a duration; use 0 (none) or more")
        if self.checkpoint_s > 0 and self.out_dir is None:
            raise UsageError("--checkpoint: the reports need a folder; give --out DIR")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise UsageError(f"--metrics-port: {self.metrics_port} is not a port; use 0..65535")
        if self.placement == "local" or (self.placement == "auto" and self.redis_url is None):
            # Local processes for sure (a private Redis has no fleet): checked before anything starts.
            check_local_worker_count(self.workers)


def new_run_id() -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return f"{stamp}-{uuid.uuid4().hex[:6]}"


def execute_run(plan: Plan, options: RunOptions) -> RunResult:
    """Carry out `plan` with `options`; the merged result (also written to `options.out_dir`)."""
    plan = described_by_reflection(plan)
    run_id = options.run_id or new_run_id()
    if options.out_dir is not None:
        from ..results.out_folder import check_out_dir

        check_out_dir(options.out_dir)  # a folder the reports cannot go to is found now, not after the run
    reap_leftovers()
    with ExitStack() as stack:
        # First of all: a busy --metrics-port is one line before any process starts.
        live = LiveView(
            workers_total=options.workers,
            run_id=run_id,
            show=options.live,
            metrics_port=options.metrics_port,
            metrics_address=options.metrics_address,
        )
        stack.callback(live.close)
        run_dir = create_run_folder()
        stack.callback(shutil.rmtree, run_dir, ignore_errors=True)
        redis_url = options.redis_url
        if redis_url is None:
            private = PrivateRedis(run_dir)
            redis_url = private.start()
            stack.callback(private.stop)
        client = wire.open_redis(redis_url)
        stack.callback(client.close)
        keys = wire.RunKeys(run_id)
        stack.callback(clear_run_keys, client, keys)
        workers = place_workers(
            client,
            redis_url,
            options.workers,
            run_id=run_id,
            placement=options.placement,
            log_dir=run_dir / "logs",
            exit_with_parent=options.redis_url is None,
            kubernetes=options.kubernetes,
        )
        stack.callback(workers.release)
        return coordinate(stack, plan, options, RunConnection(run_id, client, redis_url, keys), workers, live)


@dataclass(frozen=True)
class RunConnection:
    """Where a run is coordinated: its id, its Redis (a client and the URL) and its keys."""

    run_id: str
    client: redis.Redis
    redis_url: str
    keys: wire.RunKeys


def coordinate(
    stack: ExitStack,
    plan: Plan,
    options: RunOptions,
    connection: RunConnection,
    workers: Workers,
    live: LiveView,
    resume: wire.ResumeInfo | None = None,
) -> RunResult:
    """Coordinate the run (from its start, or reattached to it: `resume`), write its reports and keep
    them in Redis; RunError when it was aborted."""
    coordinator = Coordinator(plan, options, connection, workers, live, resume=resume)
    if coordinator.aggregator.log_spool is not None:
        stack.callback(coordinator.aggregator.log_spool.close)
    start_mono_s = coordinator.start()
    # From here a stop signal stops the workers and the figures so far are written, marked
    # interrupted; before, it ends the run with nothing written (`interrupts.Interrupted`).
    with interrupts.deferred():
        result = coordinator.collect(start_mono_s)
        live.close()
        if options.out_dir is not None:
            from ..results.outputs import write_run_outputs

            write_run_outputs(result, options.out_dir)
        if options.redis_url is not None and options.results_ttl_s > 0:
            from .kept_results import keep_run_results

            keep_run_results(connection.client, result, options.out_dir, ttl_s=options.results_ttl_s)
    if coordinator.aborted_reason:
        where = f"; partial results in {options.out_dir}" if options.out_dir is not None else ""
        raise RunError(f"run aborted: {coordinator.aborted_reason} (--on-worker-loss abort){where}")
    return result


def described_by_reflection(plan: Plan) -> Plan:
    """A gRPC plan that leaves its methods to server reflection, described now (once, for every
    worker): a server without reflection or a message that does not fit is one line before any load."""
    if plan.protocol != "grpc" or plan.grpc.descriptor_set:
        return plan
    from ..worker.engines.grpc_reflection import with_reflected_descriptors

    return with_reflected_descriptors(plan)
