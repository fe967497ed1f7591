"""The coordinator's one loop over a run (`run.py` sets the run up and writes its reports): it starts
the run (or reattaches to it), then every turn reads the records stream (blocking a little) and merges
what it read, and every heartbeat interval refreshes its own key and looks at the workers' heartbeats
(`heartbeats.py`: who is lost). The shares and the start instant are handed out by `assignment.py`; a
Redis outage is borne by `redis_outage.py`; checkpoints are written by `checkpoints.py`.

On an external Redis the run is detached: the loop publishes the run's `wire.ResumeInfo`, which lets
`meshload resume` (`resume.py`) reattach the same loop to it, first replaying the whole records stream.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .. import interrupts
from ..errors import UsageError
from ..pipeline import wire
from ..pipeline.collector import StreamCollector
from ..results.aggregate import RunAggregator
from ..results.hlog import IntervalLogSpool
from ..results.run_result import RunResult
from ..results.trends import run_trends
from ..scenarios.plan import Plan
from .assignment import assign
from .checkpoints import Checkpoints
from .environment import describe_environment, worker_places
from .heartbeats import Heartbeats
from .live import LiveView
from .mesh_sampling import MeshSampling
from .placement import Workers
from .redis_outage import RedisOutage
from .run_keys import signal_stop

if TYPE_CHECKING:
    from .run import RunConnection, RunOptions

log = logging.getLogger(__name__)

#: How long one read of the records stream blocks.
READ_BLOCK_MS = 200
#: After the planned end, workers get the request timeout plus this long to send their final record.
FINISH_GRACE_S = 10.0
#: How often pending entries of dead consumers are claimed.
CLAIM_EVERY_S = 5.0
#: Live figures are recomputed this often (a snapshot costs two percentile passes).
LIVE_EVERY_S = 0.5
#: The interval log's spool in the run's folder, while the run goes on.
LOG_SPOOL_FILE = ".histograms.hlog.spool"
#: After an abort, records still arriving are collected for this long.
ABORT_DRAIN_S = 1.0
#: After SIGINT/SIGTERM, stopped workers get this long (beyond the request timeout, up to the cap) to
#: deliver what they measured before the reports are written without them.
INTERRUPT_DRAIN_S = 2.0
INTERRUPT_DRAIN_CAP_S = 8.0


def _log_spool(out_dir: Path | None) -> IntervalLogSpool | None:
    """The interval log of a run with a folder goes to disk as records arrive (flat memory on a long
    run); a spool left by a coordinator that died is started afresh by `meshload resume`."""
    if out_dir is None:
        return None
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        return IntervalLogSpool(out_dir / LOG_SPOOL_FILE)
    except OSError as exc:
        raise UsageError(f"--out {out_dir}: cannot write there ({exc.strerror}); choose another folder") from exc


class Coordinator:
    """The loop over one run: start (or reattach), collect until every worker is accounted for."""

    def __init__(
        self,
        plan: Plan,
        options: RunOptions,
        connection: RunConnection,
        workers: Workers,
        live: LiveView,
        *,
        resume: wire.ResumeInfo | None = None,
    ) -> None:
        self.plan = plan
        self.options = options
        self.run_id = run_id = connection.run_id
        self.client = connection.client
        self.redis_url = connection.redis_url
        self.keys = keys = connection.keys
        self.resume = resume
        self.workers = workers
        self.live = live
        self.aggregator = RunAggregator(plan, run_id, log_spool=_log_spool(options.out_dir))
        self.aggregator.expect_workers(list(workers.ids))
        # The same consumer name when resumed: the dead coordinator's pending list is read first.
        self.collector = StreamCollector(self.client, keys, consumer=f"coordinator-{run_id}")
        self.checkpoints = Checkpoints(options.out_dir, options.checkpoint_s)
        self.heartbeats = Heartbeats(workers.ids)
        self.lost: set[str] = set()
        self.aborted_reason = ""
        self.interrupted_by = ""  # the stop signal's name (SIGINT, SIGTERM) when one ended the run
        self.duplicates = 0
        self._mesh_sampling: MeshSampling | None = None
        self._hosts: dict[str, str] = {}
        self._nodes: dict[str, str] = {}
        self._outage = RedisOutage(self.redis_url, live.note)

    # -- the run -----------------------------------------------------------------------------

    def run(self) -> RunResult:
        """The whole run, start to last record (a stop signal is not deferred here: see `coordinate`)."""
        return self.collect(self.start())

    def start(self) -> float:
        """Start the run (hand out the shares), or reattach to it; its start instant as a local
        monotonic second."""
        self.collector.ensure_group()
        self._refresh_coordinator_key()
        self._hosts, self._nodes = worker_places(self.client, set(self.workers.ids))  # while all are registered
        if self.resume is None:
            start_redis_us = self._assign()
            if self.options.redis_url is not None:
                self._publish_resume_info(start_redis_us)
        else:
            start_redis_us = self.resume.start_redis_us
            self._replay()
        own_offset_ms = wire.measure_clock_offset_ms(self.client)
        return wire.local_monotonic_ns_of(start_redis_us, own_offset_ms) / 1e9

    def collect(self, start_mono_s: float) -> RunResult:
        """Collect and merge until every worker finished (or was lost, or a stop signal came)."""
        measured_start_s = start_mono_s + self.plan.warmup_s
        measured_end_s = start_mono_s + self.plan.total_s
        deadline_s = measured_end_s + self.plan.timeout_s + FINISH_GRACE_S
        if self.resume is not None:
            # Reattached late (after the planned end): the workers' last records still get their time.
            deadline_s = max(deadline_s, time.monotonic() + self.plan.timeout_s + FINISH_GRACE_S)
        self._mesh_sampling = MeshSampling(
            self.options.mesh,
            run_start_s=start_mono_s,
            measured_start_s=measured_start_s,
            measured_end_s=measured_end_s,
            prometheus=self.options.prometheus,
        )
        next_look_s = time.monotonic()
        next_claim_s = time.monotonic() + CLAIM_EVERY_S
        next_live_s = time.monotonic()
        try:
            while not self._all_accounted_for():
                signum = interrupts.take()
                if signum is not None:
                    self._interrupt(signum)
                    break
                now = time.monotonic()
                self._mesh_sampling.tick(now)
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
                if self.checkpoints.due(now):
                    self.checkpoints.write(self._result(partial=True))
                if self.lost and self.options.on_worker_loss == "abort":
                    self._abort()
                    break
        finally:
            self._mesh_sampling.stop()
        return self._result()

    def _result(self, *, partial: bool = False) -> RunResult:
        sampling = self._mesh_sampling
        result = self.aggregator.result(
            mesh=sampling.usage if sampling is not None else None,
            environment=self._environment(),
            streams_lost=self.collector.streams_lost,
            malformed_records=self.collector.malformed,
            interrupted=self.interrupted_by,
        )
        if partial:
            result.partial = True
            result.validity.append(
                f"partial: a checkpoint written {result.measured_s:.0f}s into the measured "
                f"{self.plan.duration_s:g}s, while the run was still going"
            )
        if sampling is not None:
            result.mesh_minutes = list(sampling.minutes)
        result.trends = run_trends(result.minutes, result.mesh_minutes)
        if self.resume is not None:
            result.environment["resumed"] = True
            # The stream keeps STREAM_MAXLEN entries: resumed too late, the oldest were trimmed away.
            for worker_id, missing in sorted(self.aggregator.missing_records().items()):
                result.degraded = True
                result.validity.append(f"worker {worker_id}: {missing} records never reached the report")
        return result

    def _publish_resume_info(self, start_redis_us: int) -> None:
        """What `meshload resume` needs, should this coordinator die (the workers go on without it)."""
        info = wire.ResumeInfo(
            run_id=self.run_id,
            plan_json=self.plan.model_dump_json(),
            worker_ids=list(self.workers.ids),
            start_redis_us=start_redis_us,
            out_dir=str(self.options.out_dir.resolve()) if self.options.out_dir is not None else "",
            checkpoint_s=self.options.checkpoint_s,
            results_ttl_s=self.options.results_ttl_s,
        )
        self.client.set(self.keys.resume, wire.encode(info))

    def _replay(self) -> None:
        """Reattached: merge every record already in the stream (the dead coordinator's went with it)."""
        for batch in self.collector.replay():
            self._merge(batch.records)
        self.live.note(f"reattached to run {self.run_id}: {self.aggregator.snapshot().completed:,} responses so far")

    def _assign(self) -> int:
        """Hand every worker its share; once all accepted, the common start instant (Redis server
        clock, Unix microseconds). A refusal ends the run here, before anyone sent anything."""
        start_redis_us = assign(
            self.client,
            self.keys,
            self.plan,
            self.workers,
            run_id=self.run_id,
            detached=self.options.redis_url is not None,  # an external Redis outlives this process
            keep_alive=self._refresh_coordinator_key,
        )
        self.heartbeats.restart(time.monotonic())
        return start_redis_us

    def _merge(self, records: list) -> None:
        for record in records:
            if not self.aggregator.add(record):
                self.duplicates += 1
            else:
                self.live.record(record)
            if record.worker_id in self.lost and not self.aborted_reason:
                # Counted lost while silent (paused, starved), yet it is back: wait for its final record.
                self.lost.discard(record.worker_id)
                self.aggregator.mark_returned(record.worker_id)
                self.live.note(f"worker {record.worker_id} is back; its records are counted")
            self.heartbeats.heard_from(record.worker_id)  # a record is as good as a heartbeat

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
        self.heartbeats.look(beats, now)
        for worker_id in self._unfinished():
            silent_s = self.heartbeats.silent_s(worker_id, now)
            if silent_s > wire.HEARTBEAT_LIVENESS_S:
                self._mark_lost(worker_id, f"silent for {silent_s:.1f}s")
            elif self.workers.exited(worker_id) and silent_s > wire.HEARTBEAT_INTERVAL_S * 2:
                self._mark_lost(worker_id, f"its process exited: {self.workers.last_log_line(worker_id)}")

    def _mark_lost(self, worker_id: str, why: str) -> None:
        if worker_id in self.lost:
            return
        self.lost.add(worker_id)
        self.aggregator.mark_lost(worker_id, why)
        self.live.note(f"worker {worker_id} lost ({why}); its records so far are kept")

    def _abort(self) -> None:
        lost = ", ".join(sorted(self.lost))
        self.aborted_reason = f"worker {lost} lost"
        try:
            signal_stop(self.client, self.keys)
            drain_until = time.monotonic() + ABORT_DRAIN_S
            while time.monotonic() < drain_until and self._unfinished():
                self._merge(self.collector.collect(READ_BLOCK_MS).records)
        except wire.TRANSIENT_ERRORS as exc:
            log.warning("Redis unreachable while aborting: %s", exc)

    def _interrupt(self, signum: int) -> None:
        """Stop every worker and collect what they measured until then (a bounded while)."""
        self.interrupted_by = interrupts.signal_name(signum)
        self.live.note(f"{self.interrupted_by}: stopping the workers and collecting what they measured")
        drain_s = min(self.plan.timeout_s + INTERRUPT_DRAIN_S, INTERRUPT_DRAIN_CAP_S)
        try:
            signal_stop(self.client, self.keys)
            drain_until = time.monotonic() + drain_s
            while time.monotonic() < drain_until and self._unfinished():
                self._merge(self.collector.collect(READ_BLOCK_MS).records)
        except wire.TRANSIENT_ERRORS as exc:
            log.warning("Redis unreachable while stopping on %s: %s", self.interrupted_by, exc)

    # -- Redis outages -----------------------------------------------------------------------

    def _unreachable(self, exc: BaseException) -> None:
        self._outage.unreachable(exc)
        self.collector.forget_progress()
        time.sleep(0.1)

    def _reachable_again(self) -> None:
        self._outage.reachable_again()

    # -- where the workers run ----------------------------------------------------------------

    def _environment(self) -> dict[str, object]:
        try:
            environment = describe_environment(self.client, self._hosts, self._nodes)
        except wire.TRANSIENT_ERRORS:
            environment = describe_environment(None, self._hosts, self._nodes)
        environment["duplicate_records"] = self.duplicates
        environment["malformed_records"] = self.collector.malformed
        return environment
