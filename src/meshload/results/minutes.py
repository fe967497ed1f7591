"""One minute of a run, all workers merged: what a long run (a soak) shows over its whole length,
while only its last `PER_SECOND_WINDOW_S` seconds are kept per second.

Every record feeds its second and its minute as it is merged (never a second folded into a minute
later), so a minute's counts and its latency histogram are exact whatever order records arrive in.
A minute's histogram is dense while records for it may still arrive and reduced to its non-empty
counters afterwards (`SecondHistogram`), so memory grows with a run's minutes, not its seconds.
"""

from __future__ import annotations

from .histogram import DecodedCounts
from .seconds import SecondHistogram

#: Timeseries step of the whole-run view.
MINUTE_S = 60.0
#: Percentiles of each minute's corrected latency.
MINUTE_PERCENTILES = (50.0, 99.0, 99.9)


class Minute:
    """One minute of the run, all workers merged."""

    __slots__ = ("completed", "end_s", "failed", "late", "latency", "sent", "warmup")

    def __init__(self) -> None:
        self.completed = 0
        self.sent = 0
        self.failed = 0
        self.late = 0
        self.end_s = 0.0  # the furthest record end inside this minute, relative to its start
        self.warmup = False
        self.latency = SecondHistogram(MINUTE_PERCENTILES)

    @property
    def is_open(self) -> bool:
        return self.latency.is_open

    def add(
        self, *, completed: int, sent: int, failed: int, late: int, warmup: bool, end_s: float, latency: DecodedCounts
    ) -> None:
        self.completed += completed
        self.sent += sent
        self.failed += failed
        self.late += late
        self.warmup = self.warmup or warmup
        self.end_s = min(max(self.end_s, end_s), MINUTE_S)
        self.latency.add(latency)

    def close(self) -> None:
        self.latency.close()

    def forget(self) -> None:
        self.latency.forget()

    def percentiles_us(self) -> dict[float, int]:
        return self.latency.percentiles_us()
