"""A finished run's files kept in Redis for a while, so that they can be fetched from anywhere that
reaches Redis (`meshload results get RUN_ID --redis URL`), e.g. from outside the cluster whose
coordinator pod wrote them.

One hash per run (`wire.results_key`): each file zlib-compressed under its name, and the run's
`ResultsMeta`; the hash expires with the TTL. An index (`wire.results_index_key`, a sorted set
scored by expiry) lists the kept runs; entries whose time has passed are skipped by the list and
dropped whenever another run is kept.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass
from typing import cast

import redis

from . import wire


@dataclass(frozen=True)
class KeptResults:
    """A kept run's files (uncompressed) and what is known about them."""

    meta: wire.ResultsMeta
    files: dict[str, bytes]


def keep_results(
    client: redis.Redis,
    run_id: str,
    files: dict[str, bytes],
    *,
    ttl_s: float,
    valid: bool = True,
    labels: dict[str, str] | None = None,
    left_out: dict[str, int] | None = None,
) -> wire.ResultsMeta:
    """Keep `files` ({name: content}) of run `run_id` for `ttl_s` seconds (replacing what was kept)."""
    if ttl_s <= 0:
        raise ValueError(f"a results TTL must be above 0 seconds (got {ttl_s:g})")
    now_ms = int(time.time() * 1000)
    ttl_ms = max(1, round(ttl_s * 1000))
    meta = wire.ResultsMeta(
        run_id=run_id,
        stored_unix_ms=now_ms,
        expires_unix_ms=now_ms + ttl_ms,
        files={name: len(content) for name, content in files.items()},
        left_out=dict(left_out or {}),
        valid=valid,
        labels=dict(labels or {}),
    )
    fields: dict[str, bytes] = {name: zlib.compress(content, 6) for name, content in files.items()}
    fields[wire.RESULTS_META_FIELD] = wire.encode(meta)
    key = wire.results_key(run_id)
    pipe = client.pipeline(transaction=False)
    pipe.delete(key)
    pipe.hset(key, mapping=fields)  # type: ignore[arg-type]  # redis-py types the mapping's values as str
    pipe.pexpire(key, ttl_ms)
    pipe.zadd(wire.results_index_key(), {run_id: meta.expires_unix_ms})
    pipe.zremrangebyscore(wire.results_index_key(), "-inf", now_ms)
    # The server's own refusal (a full Redis, a user without the rights), not redis-py's retelling of
    # the whole command with its binary arguments.
    refused = [reply for reply in pipe.execute(raise_on_error=False) if isinstance(reply, Exception)]
    if refused:
        raise refused[0]
    return meta


def fetch_results(client: redis.Redis, run_id: str) -> KeptResults | None:
    """The kept files of run `run_id`, or None when none are kept (never, or expired)."""
    fields = client.hgetall(wire.results_key(run_id))
    raw_meta = fields.pop(wire.RESULTS_META_FIELD.encode(), None)
    if raw_meta is None:
        return None
    files = {wire.reply_text(name): zlib.decompress(wire.reply_bytes(content)) for name, content in fields.items()}
    return KeptResults(meta=wire.decode_results_meta(raw_meta), files=files)


def list_results(client: redis.Redis) -> list[wire.ResultsMeta]:
    """What is kept now, the most recently kept first."""
    now_ms = int(time.time() * 1000)
    # Without scores, the reply is the members (redis-py types every shape ZRANGEBYSCORE can return).
    members = cast("list[bytes]", client.zrangebyscore(wire.results_index_key(), now_ms, "+inf"))
    run_ids = [wire.reply_text(member) for member in members]
    if not run_ids:
        return []
    pipe = client.pipeline(transaction=False)
    for run_id in run_ids:
        pipe.hget(wire.results_key(run_id), wire.RESULTS_META_FIELD)
    metas = [wire.decode_results_meta(raw) for raw in pipe.execute() if raw is not None]
    return sorted(metas, key=lambda meta: meta.stored_unix_ms, reverse=True)
