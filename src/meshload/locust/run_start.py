"""How a test's recording starts in each of the plugin's roles (see `plugin.py`): the master picks
the run id, the common start instant and each worker's share and tells the workers through Locust's
parsed options; a worker records its users and publishes to Redis; a local runner records and merges
in one process. Also the run's plan as Locust's environment describes it.
"""

from __future__ import annotations

import logging
import socket
import time
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from locust.runners import STATE_MISSING

from ..errors import MeshloadError
from ..pipeline import wire
from ..pipeline.publisher import RecordPublisher
from ..scenarios.plan import Plan
from ..worker.locust_recording import NodeRecording, Share
from .collection import RunCollection, StreamReader, locust_plan
from .open_loop import PACERS
from .options import MeshloadOptions

log = logging.getLogger("meshload.locust")

#: The open-loop schedule starts this long after the test (whose start is the records' origin), so
#: the workers have the spawn message, their clock offset and their users before the first planned
#: instant. `--meshload-warmup` of the same length leaves exactly the schedule in the statistics.
SCHEDULE_LEAD_S = 1.0
#: The attribute of Locust's parsed options through which the master tells the workers about a test.
RUN_OPTION = "meshload_run"


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def worker_id_of(index: int) -> str:
    return f"locust-{index}"


def run_seed(run_id: str) -> int:
    return zlib.crc32(run_id.encode())


@dataclass
class RunningTest:
    """The test in progress, as this process sees it."""

    run_id: str
    start_ns: int
    options: MeshloadOptions
    collection: RunCollection | None = None  # local and master
    reader: StreamReader | None = None  # master
    node: NodeRecording | None = None  # local and worker
    publisher: RecordPublisher | None = None  # worker
    worker_hosts: dict[str, str] = field(default_factory=dict)
    stopping_ns: int = 0  # when the test began to stop (monotonic), 0 while it runs


def run_plan(environment: Any, options: MeshloadOptions, elapsed_s: float, users: int = 0) -> Plan:
    """The plan a Locust test amounts to, `elapsed_s` into it with `users` users at most."""
    host = environment.host or next((u.host for u in environment.user_classes if getattr(u, "host", None)), "")
    labels = {"generator": "locust", "locust_users": str(users)}
    if environment.locustfile:
        labels["locustfile"] = Path(str(environment.locustfile)).name
    return locust_plan(
        host=str(host or ""),
        pacers=PACERS,
        users=users,
        duration_s=elapsed_s - options.warmup_s,
        warmup_s=options.warmup_s,
        name=f"locust {labels.get('locustfile', '')}".strip(),
        labels=labels,
    )


def start_master(environment: Any, runner: Any, client: Any, redis_url: str, options: MeshloadOptions) -> RunningTest:
    """A new test on the master: its run, announced to the workers, and the reader of their records."""
    run_id = new_run_id()
    offset_ms = wire.measure_clock_offset_ms(client)
    start_redis_us = wire.redis_time_us(client)
    start_ns = wire.local_monotonic_ns_of(start_redis_us, offset_ms)
    workers = sorted(c.id for c in runner.clients.values() if c.state != STATE_MISSING)
    shares = {client_id: index for index, client_id in enumerate(workers)}
    worker_ids = {client_id: worker_id_of(runner.get_worker_index(client_id)) for client_id in workers}
    setattr(
        environment.parsed_options,
        RUN_OPTION,
        {
            "run_id": run_id,
            "redis_url": redis_url,
            "start_redis_us": start_redis_us,
            "schedule_lead_s": SCHEDULE_LEAD_S,
            "shares": shares,
            "share_count": len(shares),
            "warmup_s": options.warmup_s,
            "seed": run_seed(run_id),
        },
    )
    collection = RunCollection(run_plan(environment, options, 0.0), run_id, start_ns, list(worker_ids.values()))
    test = RunningTest(run_id=run_id, start_ns=start_ns, options=options, collection=collection)
    test.worker_hosts = {worker_ids[c]: c.rsplit("_", 1)[0] for c in workers}
    test.reader = StreamReader(redis_url, wire.RunKeys(run_id), collection)
    where = wire.redacted(redis_url)
    log.info("meshload: test %s, %d worker(s), records through %s", run_id, len(workers), where)
    return test


def start_worker(environment: Any, runner: Any, options: MeshloadOptions, info: dict) -> RunningTest:
    """A new test on a worker, as the master announced it (`info`): its users recorded and published."""
    run_id, url = str(info["run_id"]), str(info["redis_url"])
    offset_ms = 0.0
    try:
        client = wire.open_redis(url)
        try:
            offset_ms = wire.measure_clock_offset_ms(client)
        finally:
            client.close()
    except MeshloadError as exc:
        log.error(
            "meshload: %s; this worker's records cannot reach the master (start the master with "
            "--meshload-redis URL reachable from every worker)",
            exc,
        )
    start_ns = wire.local_monotonic_ns_of(int(info["start_redis_us"]), offset_ms)
    share_index = info["shares"].get(runner.client_id)
    share = Share(int(share_index), int(info["share_count"])) if share_index is not None else None
    if share is None and PACERS:
        log.warning("meshload: this worker joined after the test started; its open-loop users stay idle")
    publisher = RecordPublisher(url, wire.RunKeys(run_id)).start()
    node = NodeRecording(
        request_event=environment.events.request,
        worker_id=worker_id_of(runner.worker_index),
        run_id=run_id,
        start_ns=start_ns,
        schedule_lead_s=float(info["schedule_lead_s"]),
        sink=publisher.submit,
        pacers=PACERS,
        share=share,
        warmup_s=float(info["warmup_s"]),
        clock_offset_ms=offset_ms,
        seed=int(info["seed"]),
    )
    node.start()
    return RunningTest(run_id=run_id, start_ns=start_ns, options=options, node=node, publisher=publisher)


def start_local(environment: Any, options: MeshloadOptions) -> RunningTest:
    """A new test on a local runner: its users recorded straight into the collection."""
    run_id = new_run_id()
    start_ns = time.monotonic_ns()
    worker_id = worker_id_of(0)
    collection = RunCollection(run_plan(environment, options, 0.0), run_id, start_ns, [worker_id])
    node = NodeRecording(
        request_event=environment.events.request,
        worker_id=worker_id,
        run_id=run_id,
        start_ns=start_ns,
        schedule_lead_s=SCHEDULE_LEAD_S,
        sink=collection.add,
        pacers=PACERS,
        share=Share(0, 1),
        warmup_s=options.warmup_s,
        seed=run_seed(run_id),
    )
    node.start()
    test = RunningTest(run_id=run_id, start_ns=start_ns, options=options, collection=collection, node=node)
    test.worker_hosts = {worker_id: socket.gethostname()}
    return test
