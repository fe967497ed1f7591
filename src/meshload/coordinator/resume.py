"""Reattaching to a detached run whose coordinator died (`meshload resume RUN_ID --redis URL`).

A run on an external Redis is detached: its workers go on, and publish, without a coordinator, and
the run's `ResumeInfo` stays in Redis. Resuming reads it, waits for the dead coordinator's key to
expire (a live coordinator is never doubled), replays the whole records stream into a new
aggregator, then carries on as the coordinator would have (its pending list first, then new
records) and writes the same reports. (worker, seq) keeps every record exactly once.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path

import redis

from ..errors import UsageError
from ..pipeline import wire
from ..results.run_result import RunResult
from ..scenarios.plan import Plan
from .live import LiveView
from .placement import Workers
from .run import RunConnection, RunOptions, coordinate
from .run_keys import clear_run_keys


def resume_run(
    run_id: str, redis_url: str, *, out_dir: Path | None = None, live: bool = True
) -> tuple[RunResult, Path]:
    """Finish the detached run `run_id`; its result and the folder it was written to (`out_dir`, by
    default where its coordinator wrote its checkpoints)."""
    client = wire.open_redis(redis_url)
    with ExitStack() as stack:
        stack.callback(client.close)
        keys = wire.RunKeys(run_id)
        info = _resume_info(client, keys, redis_url)
        _wait_for_the_dead(client, keys)
        target = out_dir if out_dir is not None else Path(info.out_dir) if info.out_dir else None
        if target is None:
            raise UsageError(f"run {run_id} was started without --out; give the reports a folder with --out DIR")
        options = RunOptions(
            workers=len(info.worker_ids),
            redis_url=redis_url,
            out_dir=target,
            live=live,
            placement="fleet",
            run_id=run_id,
            checkpoint_s=info.checkpoint_s,
            results_ttl_s=info.results_ttl_s,
        )
        plan = Plan.model_validate_json(info.plan_json)
        stack.callback(clear_run_keys, client, keys)
        connection = RunConnection(run_id, client, redis_url, keys)
        view = LiveView(workers_total=len(info.worker_ids), run_id=run_id, show=live)
        stack.callback(view.close)
        workers = Workers(ids=list(info.worker_ids))
        result = coordinate(stack, plan, options, connection, workers, view, resume=info)
        return result, target


def _resume_info(client: redis.Redis, keys: wire.RunKeys, redis_url: str) -> wire.ResumeInfo:
    raw = client.get(keys.resume)
    if raw is None:
        raise UsageError(
            f"run {keys.run_id}: nothing to resume in Redis at {wire.redacted(redis_url)}; it finished "
            "(see `meshload results get`), ran on a private Redis (not detached), or the id is wrong"
        )
    return wire.decode_resume_info(raw)


def _wait_for_the_dead(client: redis.Redis, keys: wire.RunKeys) -> None:
    """A coordinator that died a moment ago still has its key: wait for it to expire (at most its
    TTL); one still refreshed after that is alive, and resuming would double it."""
    deadline = time.monotonic() + wire.COORDINATOR_TTL_MS / 1000.0 + 1.0
    while client.exists(keys.coordinator):
        if time.monotonic() > deadline:
            raise UsageError(
                f"run {keys.run_id} still has a live coordinator; resume only a run whose coordinator died"
            )
        time.sleep(0.2)
