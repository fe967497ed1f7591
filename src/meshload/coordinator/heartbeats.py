"""The coordinator's watch over its workers' heartbeats: when each one last gave a sign of life (a new
heartbeat or a record). A worker is lost when its heartbeat has not moved for `HEARTBEAT_LIVENESS_S`
while Redis answered; time during which the coordinator itself could not look does not count against
anyone."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..pipeline import wire

#: A gap this long between two successful heartbeat checks means the coordinator could not look:
#: everyone's silence is forgiven for that gap.
LOOK_GAP_S = 1.0


@dataclass
class _Liveness:
    """What the coordinator knows about one worker's heartbeat."""

    last_beat: int = -1
    last_change_s: float = field(default_factory=time.monotonic)
    clock_offset_ms: float = 0.0


class Heartbeats:
    """The last sign of life of each worker of the run (and of no other)."""

    def __init__(self, worker_ids: Iterable[str]) -> None:
        self._liveness = {worker_id: _Liveness() for worker_id in worker_ids}
        self._last_look_s = time.monotonic()

    def __contains__(self, worker_id: object) -> bool:
        return worker_id in self._liveness

    def restart(self, now: float) -> None:
        """Everyone's silence counts from `now` (the run starts)."""
        for liveness in self._liveness.values():
            liveness.last_change_s = now

    def heard_from(self, worker_id: str) -> None:
        """A record arrived from the worker: as good as a heartbeat."""
        liveness = self._liveness.get(worker_id)
        if liveness is not None:
            liveness.last_change_s = time.monotonic()

    def look(self, beats: Mapping[bytes | str, bytes | str], now: float) -> None:
        """Take in the run's heartbeats hash, read from Redis at `now`."""
        if now - self._last_look_s > LOOK_GAP_S:
            # We could not look for a while (Redis paused, or this process was): nobody's fault.
            self.restart(now)
        self._last_look_s = now
        for raw_id, raw_beat in beats.items():
            beating = self._liveness.get(wire.reply_text(raw_id))
            if beating is None:
                continue
            beat = wire.decode_run_beat(raw_beat)
            if beat.beat != beating.last_beat:
                beating.last_beat = beat.beat
                beating.last_change_s = now
                beating.clock_offset_ms = beat.clock_offset_ms

    def silent_s(self, worker_id: str, now: float) -> float:
        """How long the worker has given no sign of life, at `now`."""
        return now - self._liveness[worker_id].last_change_s
