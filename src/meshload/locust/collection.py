"""Merging one Locust test's interval records into a run result, on the master (or the local process).

Records arrive from the workers through the run's Redis stream (`StreamReader`, a greenlet with the
gevent-patched Redis client, reading through the coordinator's consumer group) or, in a local run,
straight from the process's own recording. `RunCollection` merges them exactly with the
`RunAggregator` that `meshload run` uses, counts the requests they hold (to compare with Locust's own
total) and builds the run's plan from what Locust ran: open loop at the pacers' total rate, or closed
loop with the users as clients.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import gevent

from ..pipeline import wire
from ..pipeline.collector import StreamCollector
from ..results.aggregate import RunAggregator
from ..results.histogram import REPORTED_PERCENTILES, percentile_key
from ..results.interval import IntervalRecord
from ..results.run_result import ReferenceFigures, RunResult
from ..scenarios.plan import ClosedLoop, LoadModel, OpenLoop, Plan, Target
from ..worker.task_pacer import TaskPacer

log = logging.getLogger(__name__)

#: How long one read of the records stream blocks (the greenlet yields meanwhile).
READ_BLOCK_MS = 200
#: Pause after Redis failed to answer, before reading again.
RETRY_S = 0.5
#: Stands for the target when Locust has no --host (users with full URLs, or not HTTP at all).
NO_HOST_URL = "http://host-not-given.invalid/"


def locust_plan(
    *,
    host: str,
    pacers: Sequence[TaskPacer],
    users: int,
    duration_s: float,
    warmup_s: float,
    name: str,
    labels: dict[str, str],
) -> Plan:
    """The plan Locust carried out, in meshload's terms (for the reports and the validity check): open
    loop at the total rate of the locustfile's `open_loop` wait times, else closed loop with the users
    as clients."""
    load: LoadModel
    if pacers:
        arrivals = {pacer.arrival for pacer in pacers}
        arrival = arrivals.pop() if len(arrivals) == 1 else "poisson"  # mixed: not evenly spaced overall
        load = OpenLoop(rate=sum(pacer.rate for pacer in pacers), arrival=arrival)
    else:
        load = ClosedLoop.model_validate({"concurrency": max(users, 1)})
    url = host if host.startswith(("http://", "https://")) else NO_HOST_URL
    return Plan.model_validate(
        {
            "name": name,
            "targets": (Target.model_validate({"url": url}),),
            "load": load,
            "duration_s": max(duration_s, 1e-3),
            "warmup_s": warmup_s,
            "labels": labels,
        }
    )


def requests_in(record: IntervalRecord) -> int:
    """Requests a record accounts for, as Locust counts them: responses and errors, not the planned
    instants that were never sent."""
    return record.completed + sum(record.errors.values()) - record.errors.get("not_sent", 0)


def locust_reference(stats_total: object, version: str) -> ReferenceFigures:
    """Locust's own figures for the whole test (its `stats.total` entry)."""
    percentiles = {
        percentile_key(p): float(stats_total.get_response_time_percentile(p / 100.0) or 0.0)  # type: ignore[attr-defined]
        for p in REPORTED_PERCENTILES
    }
    return ReferenceFigures(
        source=f"Locust {version} own statistics (from the actual send, rounded to about 2 significant digits)",
        requests=int(stats_total.num_requests),  # type: ignore[attr-defined]
        failures=int(stats_total.num_failures),  # type: ignore[attr-defined]
        percentiles_ms=percentiles,
        mean_ms=float(stats_total.avg_response_time or 0.0),  # type: ignore[attr-defined]
        max_ms=float(stats_total.max_response_time or 0.0),  # type: ignore[attr-defined]
    )


class RunCollection:
    """One test's records, merged as they come; `result()` at any moment."""

    def __init__(self, plan: Plan, run_id: str, start_ns: int, expected_workers: Sequence[str] = ()) -> None:
        self.run_id = run_id
        self.start_ns = start_ns  # the common start instant, this process's monotonic clock
        self.aggregator = RunAggregator(plan, run_id)
        self.aggregator.expect_workers(list(expected_workers))
        self.expected = set(expected_workers)
        self.requests = 0  # requests in the merged records, warm-up included (Locust counts those too)
        self.malformed = 0

    def add(self, record: IntervalRecord) -> None:
        try:
            merged = self.aggregator.add(record)
        except ValueError as exc:
            self.malformed += 1
            log.warning("meshload: a record of %s could not be merged (%s)", record.worker_id, exc)
            return
        if merged:
            self.requests += requests_in(record)
            self.expected.add(record.worker_id)

    @property
    def unfinished(self) -> set[str]:
        return self.expected - self.aggregator.finished_workers

    def elapsed_s(self) -> float:
        return max((time.monotonic_ns() - self.start_ns) / 1e9, 0.0)

    def result(self, plan: Plan, environment: dict[str, object], reference: ReferenceFigures | None) -> RunResult:
        self.aggregator.plan = plan
        result = self.aggregator.result(environment=environment)
        result.reference = reference
        return result


class StreamReader:
    """A greenlet that reads the run's records stream into a `RunCollection` until stopped."""

    def __init__(self, redis_url: str, keys: wire.RunKeys, collection: RunCollection) -> None:
        self._url = redis_url
        self._keys = keys
        self._collection = collection
        self._stopping = False
        self._greenlet = gevent.spawn(self._run)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Read what is there, then stop."""
        self._stopping = True
        self._greenlet.join(timeout_s)
        if not self._greenlet.dead:
            self._greenlet.kill(block=True)

    def _run(self) -> None:
        client = None
        collector = None
        while True:
            stopping = self._stopping  # one last read after the stop request
            try:
                if collector is None:
                    client = wire.open_redis(self._url, socket_timeout_s=READ_BLOCK_MS / 1000 + 5, check=False)
                    collector = StreamCollector(client, self._keys)
                    collector.ensure_group()
                batch = collector.collect(0 if stopping else READ_BLOCK_MS)
            except wire.TRANSIENT_ERRORS as exc:
                log.warning("meshload: cannot read records from Redis (%s); retrying", exc)
                if collector is not None:
                    collector.forget_progress()
                if stopping:
                    break
                gevent.sleep(RETRY_S)
                continue
            for record in batch.records:
                self._collection.add(record)
            if stopping and not batch.records:
                break
        if client is not None:
            client.close()
