"""One run, coordinated through Redis: get Redis and workers, hand each worker its share and one
common start instant, collect and merge the interval records, watch the workers' heartbeats, sample
the mesh over the measured window, and write the reports.

The coordinator is one thread with one loop: every turn it reads the records stream (blocking a
little), and every heartbeat interval it refreshes its own key and looks at the workers' heartbeats.
A worker is lost when its heartbeat has not moved for `HEARTBEAT_LIVENESS_S` while Redis answered;
time during which the coordinator itself could not reach Redis does not count against anyone.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

import redis

from ..errors import RunError, UsageError
from ..pipeline import wire
from ..pipeline.collector import StreamCollector
from ..results.aggregate import RunAggregator
from ..results.run_result import MeshUsage, RunResult
from ..scenarios.plan import Plan
from ..scenarios.schedule import split_plan
from .environment import describe_environment
from .live import LiveView
from .mesh.base import MeshAdapter, ResourceSampling
from .placement import Placement, Workers, place_workers
from .redis_server import PrivateRedis
from .run_folders import create_run_folder, reap_leftovers

if TYPE_CHECKING:
    from .k8s_placement import KubernetesFleet
    from .mesh.prometheus import PrometheusSource

log = logging.getLogger(__name__)

#: The common start instant lies this far after the assignments are sent (plus a little per worker),
#: so every worker has its assignment, its clock offset and its connections before it.
START_LEAD_S = 1.0
START_LEAD_PER_WORKER_S = 0.02
#: How long workers have to answer their assignment (they check it and measure their clock offset).
ANSWER_TIMEOUT_S = 15.0
ANSWER_POLL_S = 0.01
# After a first refusal, how long to wait for the other workers' answers so that one line names them all.
REFUSAL_GRACE_S = 3.0
#: How long one read of the records stream blocks.
READ_BLOCK_MS = 200
#: After the planned end, workers get the request timeout plus this long to send their final record.
FINISH_GRACE_S = 10.0
#: The coordinator gives up when it cannot reach Redis for this long.
REDIS_OUTAGE_LIMIT_S = 30.0
#: A gap this long between two successful heartbeat checks means the coordinator could not look:
#: everyone's silence is forgiven for that gap.
LOOK_GAP_S = 1.0
#: How often pending entries of dead consumers are claimed.
CLAIM_EVERY_S = 5.0
#: Live figures are recomputed this often (a snapshot costs two percentile passes).
LIVE_EVERY_S = 0.5
#: How long the stop key stays, so stragglers of an aborted run still see it.
STOP_KEY_TTL_MS = 60_000
#: After an abort, records still arriving are collected for this long.
ABORT_DRAIN_S = 1.0


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
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise UsageError(f"--metrics-port: {self.metrics_port} is not a port; use 0..65535")


def new_run_id() -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return f"{stamp}-{uuid.uuid4().hex[:6]}"


def execute_run(plan: Plan, options: RunOptions) -> RunResult:
    """Carry out `plan` with `options`; the merged result (also written to `options.out_dir`)."""
    plan = described_by_reflection(plan)
    run_id = options.run_id or new_run_id()
    reap_leftovers()
    with ExitStack() as stack:
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
        stack.callback(_clear_run_keys, client, keys)
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
        live = LiveView(
            workers_total=len(workers.ids),
            run_id=run_id,
            show=options.live,
            metrics_port=options.metrics_port,
            metrics_address=options.metrics_address,
        )
        stack.callback(live.close)
        coordinator = _Coordinator(plan, options, run_id, client, redis_url, keys, workers, live)
        result = coordinator.run()
        live.close()
        if options.out_dir is not None:
            from ..results.outputs import write_run_outputs

            write_run_outputs(result, options.out_dir)
        if options.redis_url is not None and options.results_ttl_s > 0:
            from .kept_results import keep_run_results

            keep_run_results(client, result, options.out_dir, ttl_s=options.results_ttl_s)
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


def _clear_run_keys(client: redis.Redis, keys: wire.RunKeys) -> None:
    try:
        pipe = client.pipeline(transaction=False)
        # The stop key stays a while: a straggler (lost, then back) stops instead of sending on.
        pipe.set(keys.stop, b"1", px=STOP_KEY_TTL_MS)
        pipe.delete(keys.records, keys.beats, keys.coordinator, keys.answers)
        pipe.execute()
    except wire.TRANSIENT_ERRORS:
        log.warning("could not remove the keys of run %s from Redis", keys.run_id)


@dataclass
class _Liveness:
    """What the coordinator knows about one worker's heartbeat."""

    last_beat: int = -1
    last_change_s: float = field(default_factory=time.monotonic)
    clock_offset_ms: float = 0.0


class _Coordinator:
    def __init__(
        self,
        plan: Plan,
        options: RunOptions,
        run_id: str,
        client: redis.Redis,
        redis_url: str,
        keys: wire.RunKeys,
        workers: Workers,
        live: LiveView,
    ) -> None:
        self.plan = plan
        self.options = options
        self.run_id = run_id
        self.client = client
        self.redis_url = redis_url
        self.keys = keys
        self.workers = workers
        self.live = live
        self.aggregator = RunAggregator(plan, run_id)
        self.aggregator.expect_workers(list(workers.ids))
        self.collector = StreamCollector(client, keys, consumer=f"coordinator-{run_id}")
        self.liveness = {worker_id: _Liveness() for worker_id in workers.ids}
        self.lost: set[str] = set()
        self.aborted_reason = ""
        self.duplicates = 0
        self._sampler: ResourceSampling | None = None
        self._mesh_usage: MeshUsage | None = None
        self._hosts: dict[str, str] = {}
        self._nodes: dict[str, str] = {}
        self._last_look_s = time.monotonic()
        self._unreachable_since: float | None = None

    # -- the run -----------------------------------------------------------------------------

    def run(self) -> RunResult:
        self.collector.ensure_group()
        self._refresh_coordinator_key()
        self._hosts, self._nodes = self._worker_places()  # now, while every worker is registered
        start_mono_s = self._assign()
        measured_start_s = start_mono_s + self.plan.warmup_s
        measured_end_s = start_mono_s + self.plan.total_s
        deadline_s = measured_end_s + self.plan.timeout_s + FINISH_GRACE_S
        next_look_s = time.monotonic()
        next_claim_s = time.monotonic() + CLAIM_EVERY_S
        next_live_s = time.monotonic()
        try:
            while not self._all_accounted_for():
                now = time.monotonic()
                self._sample_mesh(now, measured_start_s, measured_end_s)
                if now > deadline_s:
                    for worker_id in self._unfinished():
                        self._mark_lost(worker_id, "did not finish in time")
                    break
                try:
                    if now >= next_look_s:
                        next_look_s = now + wire.HEARTBEAT_INTERVAL_S
                        self._refresh_coordinator_key()
                        self._look_at_heartbeats()
                    if now >= next_claim_s:
                        next_claim_s = now + CLAIM_EVERY_S
                        self._merge(self.collector.claim_idle().records)
                    self._merge(self.collector.collect(READ_BLOCK_MS).records)
                    self._reachable_again()
                except wire.TRANSIENT_ERRORS as exc:
                    self._unreachable(exc)
                    continue
                if now >= next_live_s:
                    next_live_s = now + LIVE_EVERY_S
                    summaries = self.aggregator.live_summaries() if self.live.wants_summaries else None
                    self.live.update(self.aggregator.snapshot(), summaries)
                if self.lost and self.options.on_worker_loss == "abort":
                    self._abort()
                    break
        finally:
            self._stop_sampling()
        return self.aggregator.result(
            mesh=self._mesh_usage,
            environment=self._environment(),
            streams_lost=self.collector.streams_lost,
            malformed_records=self.collector.malformed,
        )

    def _assign(self) -> float:
        """Hand every worker its share; once all accepted, the common start instant (as a local
        monotonic second). A refusal ends the run here, before anyone sent anything."""
        shares = split_plan(self.plan, len(self.workers.ids))
        plan_json = self.plan.model_dump_json()
        pipe = self.client.pipeline(transaction=False)
        for worker_id, share in zip(self.workers.ids, shares, strict=False):
            assignment = wire.Assignment(run_id=self.run_id, plan_json=plan_json, index=share.index, count=share.count)
            pipe.rpush(wire.assignment_key(worker_id), wire.encode(assignment))
        pipe.execute()
        self._await_answers()
        lead_s = START_LEAD_S + START_LEAD_PER_WORKER_S * len(shares)
        redis_now_us = wire.redis_time_us(self.client)
        own_offset_ms = wire.measure_clock_offset_ms(self.client)
        start_redis_us = redis_now_us + int(lead_s * 1_000_000)
        start = wire.encode(wire.Start(run_id=self.run_id, start_redis_us=start_redis_us))
        pipe = self.client.pipeline(transaction=False)
        for worker_id in self.workers.ids:
            pipe.rpush(wire.assignment_key(worker_id), start)
        pipe.execute()
        now = time.monotonic()
        for liveness in self.liveness.values():
            liveness.last_change_s = now
        return wire.local_monotonic_ns_of(start_redis_us, own_offset_ms) / 1e9

    def _await_answers(self) -> None:
        """Wait until every worker answered its assignment; RunError if one refused or stayed silent."""
        deadline = time.monotonic() + ANSWER_TIMEOUT_S
        refusal_grace_until: float | None = None
        while True:
            answers = {
                wire.reply_text(raw_id): wire.decode_answer(raw)
                for raw_id, raw in self.client.hgetall(self.keys.answers).items()
            }
            refused = {w: a.reason for w, a in sorted(answers.items()) if not a.accepted and w in self.liveness}
            silent = [w for w in self.workers.ids if w not in answers]
            exited = [w for w in silent if self.workers.exited(w)]
            if refused or exited or (silent and time.monotonic() > deadline):
                # The workers that accepted drop their share: nothing is sent by anyone.
                self.client.set(self.keys.stop, b"1", px=STOP_KEY_TTL_MS)
            if refused:
                # The other workers' answers are moments away: wait briefly so that every refusal is
                # named in the one line, not just the first to arrive.
                if refusal_grace_until is None:
                    refusal_grace_until = time.monotonic() + REFUSAL_GRACE_S
                if not (silent and not exited and time.monotonic() < refusal_grace_until):
                    lines = [f"worker {worker} refused the run: {reason}" for worker, reason in refused.items()]
                    raise RunError("; ".join(lines))
            elif exited:
                raise RunError(
                    f"local worker {exited[0]} exited before the run: {self.workers.last_log_line(exited[0])}"
                )
            if not silent:
                return
            if time.monotonic() > deadline:
                raise RunError(
                    f"worker {silent[0]} did not answer its assignment within {ANSWER_TIMEOUT_S:g}s; is it overloaded?"
                )
            self._refresh_coordinator_key()
            time.sleep(ANSWER_POLL_S)

    def _merge(self, records: list) -> None:
        for record in records:
            if not self.aggregator.add(record):
                self.duplicates += 1
            else:
                self.live.record(record)
            liveness = self.liveness.get(record.worker_id)
            if liveness is not None:
                liveness.last_change_s = time.monotonic()  # a record is as good as a heartbeat

    # -- workers -----------------------------------------------------------------------------

    def _unfinished(self) -> list[str]:
        finished = self.aggregator.finished_workers
        return [w for w in self.workers.ids if w not in finished and w not in self.lost]

    def _all_accounted_for(self) -> bool:
        return not self._unfinished()

    def _refresh_coordinator_key(self) -> None:
        self.client.set(self.keys.coordinator, b"1", px=wire.COORDINATOR_TTL_MS)

    def _look_at_heartbeats(self) -> None:
        beats = self.client.hgetall(self.keys.beats)
        now = time.monotonic()
        if now - self._last_look_s > LOOK_GAP_S:
            # We could not look for a while (Redis paused, or this process was): nobody's fault.
            for liveness in self.liveness.values():
                liveness.last_change_s = now
        self._last_look_s = now
        for raw_id, raw_beat in beats.items():
            beating = self.liveness.get(wire.reply_text(raw_id))
            if beating is None:
                continue
            beat = wire.decode_run_beat(raw_beat)
            if beat.beat != beating.last_beat:
                beating.last_beat = beat.beat
                beating.last_change_s = now
                beating.clock_offset_ms = beat.clock_offset_ms
        for worker_id in self._unfinished():
            silent_s = now - self.liveness[worker_id].last_change_s
            if silent_s > wire.HEARTBEAT_LIVENESS_S:
                self._mark_lost(worker_id, f"silent for {silent_s:.1f}s")
            elif self.workers.exited(worker_id) and silent_s > wire.HEARTBEAT_INTERVAL_S * 2:
                self._mark_lost(worker_id, f"its process exited: {self.workers.last_log_line(worker_id)}")

    def _mark_lost(self, worker_id: str, why: str) -> None:
        if worker_id in self.lost:
            return
        self.lost.add(worker_id)
        self.aggregator.mark_lost(worker_id)
        self.live.note(f"worker {worker_id} lost ({why}); its records so far are kept")

    def _abort(self) -> None:
        lost = ", ".join(sorted(self.lost))
        self.aborted_reason = f"worker {lost} lost"
        try:
            self.client.set(self.keys.stop, b"1", px=STOP_KEY_TTL_MS)
            drain_until = time.monotonic() + ABORT_DRAIN_S
            while time.monotonic() < drain_until and self._unfinished():
                self._merge(self.collector.collect(READ_BLOCK_MS).records)
        except wire.TRANSIENT_ERRORS as exc:
            log.warning("Redis unreachable while aborting: %s", exc)

    # -- Redis outages -----------------------------------------------------------------------

    def _unreachable(self, exc: BaseException) -> None:
        now = time.monotonic()
        if self._unreachable_since is None:
            self._unreachable_since = now
            self.live.note(f"Redis unreachable ({exc}); waiting for it")
        elif now - self._unreachable_since > REDIS_OUTAGE_LIMIT_S:
            raise RunError(
                f"Redis at {wire.redacted(self.redis_url)} was unreachable for {REDIS_OUTAGE_LIMIT_S:g}s; "
                "the run cannot be collected"
            ) from exc
        self.collector.forget_progress()
        time.sleep(0.1)

    def _reachable_again(self) -> None:
        if self._unreachable_since is not None:
            self._unreachable_since = None
            self.live.note("Redis reachable again")

    # -- mesh --------------------------------------------------------------------------------

    def _sample_mesh(self, now: float, measured_start_s: float, measured_end_s: float) -> None:
        mesh = self.options.mesh
        if mesh is None:
            return
        if self._sampler is None and self._mesh_usage is None and now >= measured_start_s:
            if self.options.prometheus is not None:
                from .mesh.prometheus import PrometheusMesh

                mesh = PrometheusMesh(mesh, self.options.prometheus)
            self._sampler = mesh.start_sampling()
        elif self._sampler is not None and now >= measured_end_s:
            close_window = getattr(self._sampler, "close_window", None)
            if close_window is not None:
                # Prometheus is read once the run is collected: waiting for its next scrape here
                # would hold up the records and the heartbeats.
                close_window()
            else:
                self._stop_sampling()

    def _stop_sampling(self) -> None:
        sampler, self._sampler = self._sampler, None
        if sampler is not None:
            self._mesh_usage = sampler.stop()

    def _worker_places(self) -> tuple[dict[str, str], dict[str, str]]:
        """Each worker's host, and its Kubernetes node where it has one."""
        hosts: dict[str, str] = {}
        nodes: dict[str, str] = {}
        for raw_id, raw_info in self.client.hgetall(wire.fleet_key()).items():
            worker_id = wire.reply_text(raw_id)
            if worker_id in self.liveness:
                info = wire.decode_worker_info(raw_info)
                hosts[worker_id] = info.host
                if info.node:
                    nodes[worker_id] = info.node
        return hosts, nodes

    def _environment(self) -> dict[str, object]:
        try:
            environment = describe_environment(self.client, self._hosts, self._nodes)
        except wire.TRANSIENT_ERRORS:
            environment = describe_environment(None, self._hosts, self._nodes)
        environment["duplicate_records"] = self.duplicates
        environment["malformed_records"] = self.collector.malformed
        return environment
