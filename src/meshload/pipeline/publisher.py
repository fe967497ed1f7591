"""Delivers a worker's interval records to the run's Redis stream from a thread of its own.

The engine's event loop only appends to a deque (`submit`), so Redis latency or an outage never
delays a planned send. When Redis is unreachable or refuses for now, the records wait in a bounded
buffer and go out, in order, once it answers again. A record whose XADD reply was lost may be sent
twice; the coordinator recognises it by (worker id, seq) and counts it once. Any other failure of
the thread is a bug: its traceback is printed, and the next `submit` (so the run) and `close` fail.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

import redis
import redis.exceptions

from ..errors import InternalError
from ..results.interval import IntervalRecord, encode_record
from . import wire

log = logging.getLogger(__name__)

#: Records kept while Redis is unreachable: an hour of one-second intervals.
BUFFER_RECORDS = 3_600
#: Retry pause after a failed delivery (doubles up to the maximum).
RETRY_FIRST_S = 0.05
RETRY_MAX_S = 1.0
#: Most records sent in one pipeline.
BATCH_RECORDS = 64


class RecordPublisher:
    """A background thread that XADDs submitted records to `keys.records` (MAXLEN ~)."""

    def __init__(self, redis_url: str, keys: wire.RunKeys) -> None:
        self._url = redis_url
        self._keys = keys
        self._buffer: deque[IntervalRecord | bytes] = deque()
        self._wakeup = threading.Condition()
        self._closing = False
        self.delivered = 0  # records acknowledged by Redis (XADD returned)
        self.dropped = 0  # records dropped because the buffer was full during an outage
        self.failures = 0  # failed delivery attempts
        self.unreachable_since: float | None = None  # monotonic seconds, None while Redis answers
        self._failure: BaseException | None = None  # what ended the thread, if not a clean close
        self._thread = threading.Thread(target=self._run, name="meshload-publisher", daemon=True)

    def start(self) -> RecordPublisher:
        self._thread.start()
        return self

    def submit(self, record: IntervalRecord | bytes) -> None:
        """Queue a record for delivery (cheap, never blocks on Redis; safe from any thread). A record
        that comes encoded already (`encode_record`, as an engine's own process sends them) goes to
        Redis as it is, never decoded here."""
        self._raise_if_failed()
        with self._wakeup:
            if len(self._buffer) >= BUFFER_RECORDS:
                self._buffer.popleft()
                self.dropped += 1
            self._buffer.append(record)
            self._wakeup.notify()

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def close(self, timeout_s: float) -> bool:
        """Deliver what is queued (waiting up to `timeout_s` for Redis), then stop. True if all went out."""
        with self._wakeup:
            self._closing = True
            self._wakeup.notify()
        self._thread.join(timeout_s)
        self._raise_if_failed()
        if self._thread.is_alive():
            with self._wakeup:
                self._buffer.clear()  # give up: the thread exits at its next wakeup
                self._wakeup.notify()
            self._thread.join(1.0)
            return False
        return not self._buffer

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            raise InternalError(
                f"the record publisher stopped on an unexpected error ({type(self._failure).__name__}: "
                f"{self._failure}); its traceback is above"
            ) from self._failure

    def _run(self) -> None:
        try:
            self._deliver()
        except BaseException as exc:
            self._failure = exc
            raise  # the thread prints its traceback, once

    def _deliver(self) -> None:
        client: redis.Redis | None = None
        retry_s = RETRY_FIRST_S
        while True:
            with self._wakeup:
                while not self._buffer and not self._closing:
                    self._wakeup.wait()
                if not self._buffer:
                    break  # closing and nothing left
                batch = [self._buffer[i] for i in range(min(BATCH_RECORDS, len(self._buffer)))]
            try:
                if client is None:
                    client = wire.open_redis(self._url, check=False)
                self._send(client, batch)
            except (redis.exceptions.RedisError, OSError) as exc:  # unreachable or refusing: keep them, retry
                self.failures += 1
                if self.unreachable_since is None:
                    self.unreachable_since = time.monotonic()
                    log.warning("cannot deliver records to Redis (%s); keeping them and retrying", exc)
                if client is not None:
                    client.close()
                    client = None
                with self._wakeup:
                    self._wakeup.wait(retry_s)
                retry_s = min(retry_s * 2, RETRY_MAX_S)
                continue
            retry_s = RETRY_FIRST_S
            self.unreachable_since = None
            with self._wakeup:
                for sent in batch:
                    # Only this thread removes from the left, unless `submit` dropped the oldest.
                    if self._buffer and self._buffer[0] is sent:
                        self._buffer.popleft()
            self.delivered += len(batch)
        if client is not None:
            client.close()

    def _send(self, client: redis.Redis, batch: list[IntervalRecord | bytes]) -> None:
        pipe = client.pipeline(transaction=False)
        for record in batch:
            pipe.xadd(
                self._keys.records,
                {wire.RECORD_FIELD: record if isinstance(record, bytes) else encode_record(record)},
                maxlen=wire.STREAM_MAXLEN,
                approximate=True,
            )
        pipe.execute()
