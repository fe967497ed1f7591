"""The long-lived worker: registers in the fleet, heartbeats, waits for assignments and runs each with
the request engine, publishing its interval records to the run's stream.

Three threads, each with its own Redis connection, so none waits on another:

- the main thread waits for an assignment (BLPOP), checks it against the worker's limits
  (`admission`), answers, waits for the start, and runs the engine's event loop;
- the heartbeat thread keeps the worker visible (fleet liveness, run heartbeat) and watches the
  coordinator: if its key expires, or the run's stop key appears, the run stops by itself (a
  detached run, on an external Redis, stops only on the stop key: `meshload resume` reattaches);
- the publisher thread (`RecordPublisher`) delivers the records.

A worker spawned for a coordinator's private Redis also watches its lifeline (`exit_with_parent`):
stdin is a pipe from that coordinator, and its end means the coordinator is gone, with the Redis it
reported to. The worker then leaves at once: nothing it measures could be delivered any more.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field

import msgspec
import pydantic
import redis
import redis.exceptions

from ..errors import InternalError, PlanError, RedisError, RunError, UsageError
from ..pipeline import wire
from ..pipeline.publisher import RecordPublisher
from ..scenarios.plan import Plan
from ..scenarios.schedule import WorkerShare
from .admission import WorkerLimits, refusal
from .engine_process import ChildEngine, EngineHandle, prepare_engine
from .engines.base import EngineJob, EngineOutcome, StopSignal

log = logging.getLogger(__name__)

#: How long BLPOP waits for an assignment before the worker looks around (shutdown, idle timeout).
ASSIGNMENT_POLL_S = 1
#: Pause before retrying when Redis is unreachable while idle.
IDLE_RETRY_S = 0.5
#: What can make one assignment fail without a bug: a plan or assignment this version cannot read,
#: a refused plan, Redis going away, the machine refusing resources, an engine's process dying.
ASSIGNMENT_FAILURES: tuple[type[BaseException], ...] = (
    PlanError,
    UsageError,
    RedisError,
    RunError,
    pydantic.ValidationError,
    msgspec.DecodeError,
    redis.exceptions.RedisError,
    OSError,
)
#: How long an accepted share waits for its start before it is dropped.
START_WAIT_S = 30.0
#: Exit code of a worker whose coordinator (the other end of its lifeline) is gone.
PARENT_GONE_EXIT_CODE = 3
#: The Kubernetes node a worker's pod runs on (the chart sets it from the downward API); it goes into
#: the worker's registration and from there into the run's report.
NODE_NAME_ENV = "MESHLOAD_NODE_NAME"


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"


#: How long the run's coordinator key must stay missing before the coordinator counts as gone: a
#: restarted Redis has it back within the coordinator's next refresh (every heartbeat interval).
COORDINATOR_GONE_GRACE_S = 4 * wire.HEARTBEAT_INTERVAL_S


@dataclass
class _ActiveRun:
    """What the heartbeat thread needs to know about the run in progress."""

    keys: wire.RunKeys
    clock_offset_ms: float
    publisher: RecordPublisher
    stop: StopSignal = field(default_factory=StopSignal)
    state: str = "waiting"
    stop_reason: str = ""
    detached: bool = False  # the run goes on without its coordinator (`meshload resume` reattaches)
    orphaned: bool = False  # detached and its coordinator is gone (said once in the log)
    coordinator_missing_since: float | None = None  # monotonic second its key was first seen missing

    def request_stop(self, reason: str) -> None:
        if self.stop.requested:
            return
        self.stop_reason = reason
        self.stop.request()


class WorkerProcess:
    """`WorkerProcess(url).serve()` until SIGTERM/SIGINT (or after one run with `once=True`)."""

    def __init__(
        self,
        redis_url: str,
        *,
        worker_id: str | None = None,
        once: bool = False,
        idle_timeout_s: float | None = None,
        limits: WorkerLimits | None = None,
        exit_with_parent: bool = False,
    ) -> None:
        self.redis_url = redis_url
        self.worker_id = worker_id or default_worker_id()
        self.once = once
        self.idle_timeout_s = idle_timeout_s
        self.limits = limits or WorkerLimits()
        self.exit_with_parent = exit_with_parent
        self._shutdown = threading.Event()
        self._active: _ActiveRun | None = None
        self._reserved_by = ""  # the run this worker answered and waits to start (busy for others)
        self._beat = 0
        self._heartbeat_failure: BaseException | None = None
        self.runs_done = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def serve(self) -> int:
        """Serve assignments; returns how many runs were carried out."""
        if self.exit_with_parent:
            threading.Thread(target=_leave_when_parent_is_gone, name="meshload-lifeline", daemon=True).start()
        client = wire.open_redis(self.redis_url, socket_timeout_s=ASSIGNMENT_POLL_S + 5)
        self._register(client)
        heartbeat = threading.Thread(target=self._heartbeat, name="meshload-heartbeat", daemon=True)
        heartbeat.start()
        self._install_signal_handlers()
        idle_since = time.monotonic()
        try:
            while not self._shutdown.is_set():
                try:
                    popped = client.blpop([wire.assignment_key(self.worker_id)], timeout=ASSIGNMENT_POLL_S)
                except wire.TRANSIENT_ERRORS as exc:
                    log.warning("Redis unreachable while waiting for work (%s); retrying", exc)
                    self._shutdown.wait(IDLE_RETRY_S)
                    continue
                if popped is None:
                    if self.idle_timeout_s is not None and time.monotonic() - idle_since > self.idle_timeout_s:
                        log.info("no assignment for %.0fs; leaving", self.idle_timeout_s)
                        break
                    continue
                message = wire.decode_assignment(popped[1])
                if isinstance(message, wire.Start):
                    log.warning("run %s: a start for a share this worker does not hold; ignored", message.run_id)
                    continue
                try:
                    self._carry_out(client, message)
                except ASSIGNMENT_FAILURES:
                    # A long-lived worker survives a run it could not carry out (its coordinator sees
                    # it go silent); a one-run worker exits with the error. Anything else is a bug.
                    log.exception("an assignment failed")
                    if self.once:
                        raise
                self.runs_done += 1
                idle_since = time.monotonic()
                if self.once:
                    break
        finally:
            self._shutdown.set()
            heartbeat.join(wire.HEARTBEAT_INTERVAL_S * 4)
            self._deregister(client)
            client.close()
        if self._heartbeat_failure is not None:
            raise InternalError(
                f"the heartbeat stopped on an unexpected error ({type(self._heartbeat_failure).__name__}: "
                f"{self._heartbeat_failure}); its traceback is above"
            ) from self._heartbeat_failure
        return self.runs_done

    def shutdown(self) -> None:
        """Stop serving; a run in progress stops and delivers what it measured."""
        self._shutdown.set()
        active = self._active
        if active is not None:
            active.request_stop("worker shutting down")

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.shutdown())

    def _info(self) -> wire.WorkerInfo:
        from importlib.metadata import PackageNotFoundError, version

        try:
            meshload_version = version("meshload")
        except PackageNotFoundError:
            meshload_version = ""
        return wire.WorkerInfo(
            id=self.worker_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            cores=os.cpu_count() or 1,
            version=meshload_version,
            once=self.once,
            node=os.environ.get(NODE_NAME_ENV, ""),
        )

    def _register(self, client: redis.Redis) -> None:
        pipe = client.pipeline(transaction=False)
        pipe.hset(wire.fleet_key(), self.worker_id, wire.encode(self._info()))
        pipe.set(wire.worker_alive_key(self.worker_id), b"idle", px=wire.WORKER_ALIVE_TTL_MS)
        pipe.execute()
        log.info("worker %s registered", self.worker_id)

    def _deregister(self, client: redis.Redis) -> None:
        try:
            pipe = client.pipeline(transaction=False)
            pipe.hdel(wire.fleet_key(), self.worker_id)
            pipe.delete(wire.worker_alive_key(self.worker_id), wire.assignment_key(self.worker_id))
            pipe.execute()
        except wire.TRANSIENT_ERRORS:
            pass  # its liveness key expires by itself

    # -- one run -----------------------------------------------------------------------------

    def _carry_out(self, client: redis.Redis, assignment: wire.Assignment) -> None:
        keys = wire.RunKeys(assignment.run_id)
        if not client.exists(keys.coordinator):
            log.warning("run %s has no coordinator any more; assignment ignored", assignment.run_id)
            return
        # Busy at once (not at the next heartbeat), so no other coordinator picks this worker.
        self._reserved_by = assignment.run_id
        client.set(
            wire.worker_alive_key(self.worker_id), f"busy:{assignment.run_id}".encode(), px=wire.WORKER_ALIVE_TTL_MS
        )
        try:
            started = self._accept(client, keys, assignment)
            if started is not None:
                share, engine, clock_offset_ms, start = started
                try:
                    self._run(assignment, keys, share, engine, clock_offset_ms, start)
                finally:
                    engine.close()
        finally:
            self._reserved_by = ""

    def _accept(
        self, client: redis.Redis, keys: wire.RunKeys, assignment: wire.Assignment
    ) -> tuple[WorkerShare, EngineHandle, float, wire.Start] | None:
        """Check the share against this worker's limits, prepare its engine and answer; the share, the
        engine and the start, once every worker has accepted (None when this one refused or the run
        did not start)."""
        plan = Plan.model_validate_json(assignment.plan_json)
        share = WorkerShare(plan, assignment.index, assignment.count)
        reason = refusal(share, self.limits)
        engine: EngineHandle | None = None
        if reason is None:
            try:
                engine = prepare_engine(share)  # a locustfile is imported now, before anything is sent
            except PlanError as exc:
                reason = str(exc)
        if engine is None:
            log.warning("run %s refused: %s", assignment.run_id, reason)
            client.hset(keys.answers, self.worker_id, wire.encode(wire.Answer(accepted=False, reason=reason or "")))
            return None
        try:
            clock_offset_ms = wire.measure_clock_offset_ms(client)
            client.hset(keys.answers, self.worker_id, wire.encode(wire.Answer(accepted=True)))
            start = self._wait_for_start(client, keys)
        except BaseException:
            engine.close()
            raise
        if start is None:
            engine.close()
            return None
        return share, engine, clock_offset_ms, start

    def _wait_for_start(self, client: redis.Redis, keys: wire.RunKeys) -> wire.Start | None:
        """The Start of the run this worker accepted; None if the run was called off or its coordinator is gone."""
        deadline = time.monotonic() + START_WAIT_S
        while not self._shutdown.is_set() and time.monotonic() < deadline:
            popped = client.blpop([wire.assignment_key(self.worker_id)], timeout=ASSIGNMENT_POLL_S)
            if popped is not None:
                message = wire.decode_assignment(popped[1])
                if isinstance(message, wire.Start) and message.run_id == keys.run_id:
                    return message
                log.warning("run %s: %s while waiting for the start; ignored", keys.run_id, type(message).__name__)
                continue
            if client.exists(keys.stop) or not client.exists(keys.coordinator):
                break
        log.warning("run %s did not start (called off, or its coordinator is gone)", keys.run_id)
        return None

    def _run(
        self,
        assignment: wire.Assignment,
        keys: wire.RunKeys,
        share: WorkerShare,
        engine: EngineHandle,
        clock_offset_ms: float,
        start: wire.Start,
    ) -> None:
        start_ns = wire.local_monotonic_ns_of(start.start_redis_us, clock_offset_ms)
        publisher = RecordPublisher(self.redis_url, keys).start()
        active = _ActiveRun(
            keys=keys,
            clock_offset_ms=clock_offset_ms,
            publisher=publisher,
            state="running",
            detached=assignment.detached,
        )
        self._active = active
        log.info(
            "run %s: share %d of %d, start in %.3fs, clock offset %.3f ms",
            assignment.run_id,
            assignment.index + 1,
            assignment.count,
            (start_ns - time.monotonic_ns()) / 1e9,
            clock_offset_ms,
        )
        try:
            _run_engine(self.worker_id, share, engine, assignment, start_ns, clock_offset_ms, active)
        finally:
            active.state = "flushing"
            delivered_all = publisher.close(timeout_s=wire.WORKER_ORPHAN_S)
            if not delivered_all:
                log.error("run %s: %d records could not be delivered to Redis", assignment.run_id, publisher.pending)
            if publisher.dropped:
                log.error(
                    "run %s: %d records dropped (buffer full during a Redis outage)",
                    assignment.run_id,
                    publisher.dropped,
                )
            active.state = "done"
            self._active = None
        if active.stop_reason:
            log.warning("run %s stopped early: %s", assignment.run_id, active.stop_reason)

    # -- heartbeat ---------------------------------------------------------------------------

    def _heartbeat(self) -> None:
        try:
            self._heartbeat_loop()
        except BaseException as exc:
            self._heartbeat_failure = exc
            self.shutdown()  # a worker without a heartbeat cannot be trusted with a run
            raise  # the thread prints its traceback, once

    def _heartbeat_loop(self) -> None:
        client: redis.Redis | None = None
        unreachable_since: float | None = None
        # Beats go on until shutdown, and past it while a run still delivers its records.
        while not self._shutdown.is_set() or self._active is not None:
            active = self._active
            try:
                if client is None:
                    client = wire.open_redis(self.redis_url, socket_timeout_s=2.0, check=False)
                self._beat_once(client, active)
                unreachable_since = None
            except (redis.exceptions.RedisError, OSError) as exc:  # keep beating through outages
                if client is not None:
                    client.close()
                    client = None
                now = time.monotonic()
                if unreachable_since is None:
                    unreachable_since = now
                    log.warning("heartbeat: Redis unreachable (%s)", exc)
                elif active is not None and now - unreachable_since > wire.WORKER_ORPHAN_S:
                    active.request_stop(f"Redis unreachable for {wire.WORKER_ORPHAN_S:g}s")
            self._shutdown.wait(wire.HEARTBEAT_INTERVAL_S)
        if client is not None:
            client.close()

    def _beat_once(self, client: redis.Redis, active: _ActiveRun | None) -> None:
        self._beat += 1
        pipe = client.pipeline(transaction=False)
        busy_with = active.keys.run_id if active is not None else self._reserved_by
        state = f"busy:{busy_with}".encode() if busy_with else b"idle"
        pipe.set(wire.worker_alive_key(self.worker_id), state, px=wire.WORKER_ALIVE_TTL_MS)
        if active is not None:
            beat = wire.RunBeat(
                beat=self._beat,
                clock_offset_ms=active.clock_offset_ms,
                records_sent=active.publisher.delivered,
                state=active.state,
            )
            wire.queue_run_beat(pipe, active.keys, self.worker_id, beat)
        replies = pipe.execute()
        if active is not None:
            coordinator_alive, stop_requested = replies[-1]
            if stop_requested:
                active.request_stop("the coordinator stopped the run")
            elif coordinator_alive:
                active.coordinator_missing_since = None
                active.orphaned = False
            else:
                # Missing for a moment after a Redis restart (the coordinator sets it again at its
                # next refresh); gone for good only when it stays missing.
                now = time.monotonic()
                if active.coordinator_missing_since is None:
                    active.coordinator_missing_since = now
                if now - active.coordinator_missing_since < COORDINATOR_GONE_GRACE_S:
                    pass
                elif not active.detached:
                    active.request_stop("the coordinator is gone")
                elif not active.orphaned:
                    # A detached run: its records wait in the stream for `meshload resume`.
                    active.orphaned = True
                    log.warning(
                        "run %s: the coordinator is gone; the run goes on (meshload resume)", active.keys.run_id
                    )


def _leave_when_parent_is_gone() -> None:
    """The lifeline: block on stdin, a pipe whose other end only the coordinator holds; at its end
    (EOF, or an error reading it) the coordinator is gone, and this process leaves at once."""
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    log.warning("the coordinator that started this worker is gone; leaving")
    logging.shutdown()
    os._exit(PARENT_GONE_EXIT_CODE)


def _run_engine(
    worker_id: str,
    share: WorkerShare,
    engine: EngineHandle,
    assignment: wire.Assignment,
    start_ns: int,
    clock_offset_ms: float,
    active: _ActiveRun,
) -> EngineOutcome:
    """Run the plan's engine on a fresh event loop of its kind (in a process of its kind) until its
    share is done (or stopped)."""
    job = EngineJob(
        share=share,
        start_ns=start_ns,
        sink=active.publisher.submit,
        # An engine in a process of its own sends its records encoded: they go to Redis as they came.
        # (An engine in this process hands them on as records, encoded on the publisher's thread.)
        encoded_sink=active.publisher.submit if isinstance(engine, ChildEngine) else None,
        worker_id=worker_id,
        run_id=assignment.run_id,
        interval_s=assignment.interval_s,
        clock_offset_ms=clock_offset_ms,
    )
    return engine.run(job, active.stop)
