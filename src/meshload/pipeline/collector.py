"""Reads a run's interval records from its Redis stream through the coordinator's consumer group.

At-least-once: entries are acknowledged (many ids in one XACK) only after the caller has taken them.
A collector that restarts under the same consumer name first re-reads its own pending list (id 0),
then new entries (">"); entries left pending by another, dead consumer are claimed with XAUTOCLAIM
once idle long enough. Duplicates are the aggregator's business (it knows (worker, seq)).

A coordinator resuming a run whose coordinator died (`replay`) first reads the whole stream with
XRANGE: what the dead one had acknowledged went with its memory, but the entries are still there.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

import msgspec
import redis
import redis.exceptions

from ..results.interval import IntervalRecord, decode_record
from . import wire

log = logging.getLogger(__name__)

#: Entries read per XREADGROUP call.
READ_COUNT = 512
#: Pending entries of other consumers idle longer than this are claimed.
CLAIM_IDLE_MS = 5_000


@dataclass
class CollectedBatch:
    records: list[IntervalRecord]
    malformed: int = 0


class StreamCollector:
    """`collect(block_ms)` returns the records that arrived, already acknowledged."""

    def __init__(
        self,
        client: redis.Redis,
        keys: wire.RunKeys,
        consumer: str = "coordinator-1",
        *,
        claim_idle_ms: int = CLAIM_IDLE_MS,
    ) -> None:
        self._client = client
        self._claim_idle_ms = claim_idle_ms
        self._keys = keys
        self._consumer = consumer
        self._reading_own_pending = True  # after a (re)start: first our own pending list, from id 0
        self.malformed = 0
        self.acknowledged = 0
        self.streams_lost = 0  # times the stream had vanished (Redis restarted without persistence)

    def ensure_group(self) -> None:
        """Create the consumer group (and the stream) unless it exists; only BUSYGROUP is expected."""
        try:
            self._client.xgroup_create(self._keys.records, wire.CONSUMER_GROUP, id="0", mkstream=True)
        except redis.exceptions.ResponseError as exc:
            if not str(exc).startswith("BUSYGROUP"):
                raise

    def collect(self, block_ms: int) -> CollectedBatch:
        """Read, decode and acknowledge what is available, waiting up to `block_ms` milliseconds."""
        try:
            entries = list(self._read(block_ms))
        except redis.exceptions.ResponseError as exc:
            if not str(exc).startswith("NOGROUP"):
                raise
            # The stream and its group vanished: a Redis restarted without persistence. What it held
            # is gone; records sent from now on are collected again.
            log.warning("the records stream %s vanished (Redis restarted?); recreating it", self._keys.records)
            self.streams_lost += 1
            self.ensure_group()
            self._reading_own_pending = True
            return CollectedBatch(records=[])
        batch = self._decoded(entries)
        self._ack([entry_id for entry_id, _ in entries])
        return batch

    def replay(self) -> Iterator[CollectedBatch]:
        """Every entry of the stream from its first, acknowledged or not, in batches (nothing is
        acknowledged here: what is pending is re-read, and acknowledged, by `collect`)."""
        start = "-"
        while True:
            entries = cast(list[Entry], self._client.xrange(self._keys.records, min=start, max="+", count=READ_COUNT))
            if not entries:
                return
            yield self._decoded([(entry_id, fields or {}) for entry_id, fields in entries])
            start = "(" + wire.reply_text(entries[-1][0])  # exclusive: after the last one read

    def _decoded(self, entries: list[Entry]) -> CollectedBatch:
        batch = CollectedBatch(records=[])
        for _entry_id, fields in entries:
            data = fields.get(wire.RECORD_FIELD)
            try:
                if data is None:
                    raise msgspec.DecodeError("no record field")
                batch.records.append(decode_record(data))
            except msgspec.DecodeError as exc:
                batch.malformed += 1
                log.warning("malformed record in %s: %s", self._keys.records, exc)
        self.malformed += batch.malformed
        return batch

    def claim_idle(self) -> CollectedBatch:
        """Take over entries another consumer read but never acknowledged (it died)."""
        claimed: list[tuple[bytes, dict[bytes, bytes]]] = []
        cursor: bytes | str = "0-0"
        while True:
            reply = self._client.xautoclaim(
                self._keys.records,
                wire.CONSUMER_GROUP,
                self._consumer,
                min_idle_time=self._claim_idle_ms,
                start_id=cursor,
                count=READ_COUNT,
            )
            cursor, entries = reply[0], reply[1]
            claimed.extend((entry_id, fields) for entry_id, fields in entries if fields is not None)
            if cursor in (b"0-0", "0-0"):
                break
        if not claimed:
            return CollectedBatch(records=[])
        # Claimed entries are now ours and pending: re-read them through our own pending list.
        self._reading_own_pending = True
        return self.collect(block_ms=0)

    def _read(self, block_ms: int) -> Iterator[tuple[bytes, dict[bytes, bytes]]]:
        if self._reading_own_pending:
            reply = self._client.xreadgroup(
                wire.CONSUMER_GROUP, self._consumer, {self._keys.records: "0"}, count=READ_COUNT
            )
            entries = _entries_of(reply)
            if entries:
                # Deleted (trimmed) entries come back with no fields; acknowledge them and move on.
                yield from ((entry_id, fields or {}) for entry_id, fields in entries)
                return
            self._reading_own_pending = False
        reply = self._client.xreadgroup(
            wire.CONSUMER_GROUP,
            self._consumer,
            {self._keys.records: ">"},
            count=READ_COUNT,
            block=block_ms if block_ms > 0 else None,  # redis-py: block=0 waits forever
        )
        yield from _entries_of(reply)

    def _ack(self, entry_ids: list[bytes]) -> None:
        if entry_ids:
            self._client.xack(self._keys.records, wire.CONSUMER_GROUP, *entry_ids)
            self.acknowledged += len(entry_ids)

    def forget_progress(self) -> None:
        """After a connection failure a read's reply may be lost: re-read our pending list first."""
        self._reading_own_pending = True


#: A stream entry as the clients here read it (bytes: no `decode_responses`); fields are None for an
#: entry trimmed from the stream while it was pending.
Entry = tuple[bytes, dict[bytes, bytes]]


def _entries_of(reply: object) -> list[Entry]:
    """The entries of a one-stream XREADGROUP reply, `[[stream, [(id, fields), ...]]]` (redis-py types
    replies of every protocol version at once)."""
    streams = cast(list[tuple[bytes, list[Entry]]] | None, reply)
    return streams[0][1] if streams else []
