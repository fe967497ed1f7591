"""The coordinator's side of a Redis outage: one note when Redis stops answering and one when it is
back, and the run given up when the outage lasts `REDIS_OUTAGE_LIMIT_S`."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..errors import RunError
from ..pipeline import wire

#: The coordinator gives up when it cannot reach Redis for this long.
REDIS_OUTAGE_LIMIT_S = 30.0


class RedisOutage:
    """Since when Redis has not answered (if it has not)."""

    def __init__(self, redis_url: str, note: Callable[[str], None]) -> None:
        self._redis_url = redis_url
        self._note = note
        self._unreachable_since: float | None = None

    def unreachable(self, exc: BaseException) -> None:
        """Redis did not answer; RunError once it has not for too long."""
        now = time.monotonic()
        if self._unreachable_since is None:
            self._unreachable_since = now
            self._note(f"Redis unreachable ({exc}); waiting for it")
        elif now - self._unreachable_since > REDIS_OUTAGE_LIMIT_S:
            raise RunError(
                f"Redis at {wire.redacted(self._redis_url)} was unreachable for {REDIS_OUTAGE_LIMIT_S:g}s; "
                "the run cannot be collected"
            ) from exc

    def reachable_again(self) -> None:
        if self._unreachable_since is not None:
            self._unreachable_since = None
            self._note("Redis reachable again")
