"""Per worker, what merging a run's records keeps: which of its records were seen (`SeqSet`, so a
record seen twice counts once and a record that never arrived is counted), its summary so far, its
schedule lag, and whether its final record came."""

from __future__ import annotations

from dataclasses import dataclass, field

from .histogram import StretchCounts
from .interval import IntervalRecord
from .run_result import WorkerSummary

#: Intervals shorter than this do not count toward a worker's busiest CPU: the kernel counts process
#: CPU in 10 ms ticks, so a final record of 21 ms holding two ticks would read as 95 % of a core.
CPU_JUDGED_MIN_S = 0.25


class SeqSet:
    """The seqs of a worker's records seen so far, in constant memory for a run's length: every seq
    below `below` was seen, and the few seen out of order above it are kept one by one."""

    __slots__ = ("above", "below")

    def __init__(self) -> None:
        self.below = 0
        self.above: set[int] = set()

    def __contains__(self, seq: int) -> bool:
        return seq < self.below or seq in self.above

    @property
    def gaps(self) -> int:
        """Seqs below the highest seen that were never seen."""
        highest = max(self.above) if self.above else self.below - 1
        return highest + 1 - self.below - len(self.above)

    def add(self, seq: int) -> None:
        if seq != self.below:
            self.above.add(seq)
            return
        self.below += 1
        while self.below in self.above:
            self.above.remove(self.below)
            self.below += 1


@dataclass
class WorkerRecords:
    """One worker's part of a run, as its records are merged."""

    summary: WorkerSummary
    # Only the stretch of counters its records cover: a fleet of 1,000 workers costs no 188 MB.
    lag: StretchCounts = field(default_factory=StretchCounts)
    seqs: SeqSet = field(default_factory=SeqSet)
    finished: bool = False

    def count(self, record: IntervalRecord, failed: int) -> None:
        """Add one record's counts to the worker's summary."""
        summary = self.summary
        summary.records += 1
        summary.cpu_seconds += record.cpu_seconds
        summary.spin_seconds += record.spin_seconds
        summary.fold_cpu_seconds += record.fold_cpu_seconds
        # The newest measurement of the offset is the one that describes the worker now.
        summary.clock_offset_ms = record.clock_offset_ms
        if not record.warmup:
            # Warm-up intervals carry start-up work (connections, imports) and are not measured.
            if record.duration_s >= CPU_JUDGED_MIN_S:
                # Polling for an instant too near to sleep for is waiting, not load (worker.engines.pacing).
                busy_s = record.cpu_seconds - record.spin_seconds
                summary.max_cpu_fraction = max(summary.max_cpu_fraction, busy_s / record.duration_s)
            summary.requests += record.completed
            summary.sent += record.sent
            summary.errors += failed
