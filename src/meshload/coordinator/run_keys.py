"""A run's keys in Redis, from the coordinator's side: the stop key every worker of the run watches,
and clearing the run's keys once it is over."""

from __future__ import annotations

import logging

import redis

from ..pipeline import wire

log = logging.getLogger(__name__)

#: How long the stop key stays, so stragglers of an aborted run still see it.
STOP_KEY_TTL_MS = 60_000


def signal_stop(client: redis.Redis, keys: wire.RunKeys) -> None:
    """Tell every worker of the run to stop (before the start: to drop its share unsent)."""
    client.set(keys.stop, b"1", px=STOP_KEY_TTL_MS)


def clear_run_keys(client: redis.Redis, keys: wire.RunKeys) -> None:
    try:
        pipe = client.pipeline(transaction=False)
        # The stop key stays a while: a straggler (lost, then back) stops instead of sending on.
        pipe.set(keys.stop, b"1", px=STOP_KEY_TTL_MS)
        pipe.delete(keys.records, keys.beats, keys.coordinator, keys.answers, keys.resume)
        pipe.execute()
    except wire.TRANSIENT_ERRORS:
        log.warning("could not remove the keys of run %s from Redis", keys.run_id)
