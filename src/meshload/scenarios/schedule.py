"""Arrival schedules, and splitting a plan across workers so the aggregate is the process asked for.

Every open-loop schedule is built in "count space": `u` counts expected arrivals, and the cumulative
intensity Λ(t) = ∫ rate maps time to it. An arrival at count `u` happens at t = Λ⁻¹(u). Then

- constant spacing: the global arrivals are u = 0, 1, 2, ...; worker k of N takes u = k, k+N, k+2N,
  ... so the workers interleave exactly and their union is the evenly spaced schedule;
- Poisson: each worker draws its own unit-rate Poisson stream in count space with rate 1/N (gaps
  Exp(mean N)), independently seeded; a superposition of independent Poisson processes is Poisson,
  and time-rescaling through Λ⁻¹ makes a staged (ramping) rate a non-homogeneous Poisson process.

Instants are planned from the run's start, never from the previous send, so nothing drifts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .plan import ClosedLoop, OpenLoop, Plan


class RateCurve:
    """Piecewise-linear rate over time and its cumulative intensity Λ(t), with an exact inverse."""

    def __init__(self, load: OpenLoop, total_s: float) -> None:
        times = [0.0]
        rates = [load.rate]
        if load.stages:
            for stage in load.stages:
                times.append(times[-1] + stage.duration_s)
                rates.append(stage.rate)
        else:
            times.append(total_s)
            rates.append(load.rate)
        self.times_s = np.asarray(times, dtype=np.float64)
        self.rates = np.asarray(rates, dtype=np.float64)
        self._durations_s = np.diff(self.times_s)
        self._slopes = np.diff(self.rates) / self._durations_s
        segment_counts = self._durations_s * (self.rates[:-1] + self.rates[1:]) / 2.0
        self.counts_at = np.concatenate(([0.0], np.cumsum(segment_counts)))
        self._last_segment = len(self.rates) - 2
        # One constant rate, the common case: Λ⁻¹(u) = u / rate, a single array operation.
        self.steady_rate = float(self.rates[0]) if len(self.rates) == 2 and self._slopes[0] == 0 else None

    @property
    def total_count(self) -> float:
        """Expected arrivals over the whole schedule, all workers together."""
        return float(self.counts_at[-1])

    def counts_at_time(self, t_s: float) -> float:
        """Λ(t): expected arrivals in [0, t_s), exact on ramps (a linear interpolation of Λ would
        under-count on a falling ramp and hand instants out late)."""
        if t_s <= 0.0:
            return 0.0
        if t_s >= self.times_s[-1]:
            return self.total_count
        segment = int(np.searchsorted(self.times_s, t_s, side="right")) - 1
        x = t_s - self.times_s[segment]
        r0 = self.rates[segment]
        slope = (self.rates[segment + 1] - r0) / (self.times_s[segment + 1] - self.times_s[segment])
        return float(self.counts_at[segment] + r0 * x + slope * x * x / 2.0)

    def time_of_counts(self, u: np.ndarray) -> np.ndarray:
        """Λ⁻¹(u) for an array of counts (each below `total_count`)."""
        if self.steady_rate is not None:
            return u / self.steady_rate
        # ndarray methods rather than np.clip & co.: this runs on every chunk an engine takes.
        segment = self.counts_at.searchsorted(u, side="right") - 1
        segment = segment.clip(0, self._last_segment)
        r0 = self.rates[segment]
        remaining = u - self.counts_at[segment]
        # Solve r0·x + slope·x²/2 = remaining for x ≥ 0, in the form that is stable when slope ≈ 0.
        discriminant = np.maximum(r0 * r0 + 2.0 * self._slopes[segment] * remaining, 0.0)
        denominator = r0 + np.sqrt(discriminant)
        # denominator is 0 only where r0 = 0 and remaining = 0: the arrival is at the segment start.
        x = np.divide(2.0 * remaining, denominator, out=np.zeros_like(u), where=denominator > 0)
        return self.times_s[segment] + np.minimum(x, self._durations_s[segment])


@dataclass(frozen=True)
class WorkerShare:
    """Worker `index` of `count`: its part of a plan."""

    plan: Plan
    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"worker index {self.index} is outside 0..{self.count - 1}")

    @property
    def is_open_loop(self) -> bool:
        return isinstance(self.plan.load, OpenLoop)

    @property
    def concurrency(self) -> int:
        """Closed loop: the clients this worker runs (an even split, remainder to the first)."""
        load = self.plan.load
        if not isinstance(load, ClosedLoop):
            return 0
        base, extra = divmod(load.concurrency, self.count)
        return base + (1 if self.index < extra else 0)

    def schedule(self) -> ArrivalSchedule:
        """This worker's planned instants (open loop only)."""
        if not isinstance(self.plan.load, OpenLoop):
            raise ValueError("a closed-loop plan has no arrival schedule")
        return ArrivalSchedule(self)


def split_plan(plan: Plan, workers: int) -> list[WorkerShare]:
    """The shares of `workers` workers, whose union is exactly the plan's load."""
    if workers < 1:
        raise ValueError("at least one worker is needed")
    return [WorkerShare(plan, index, workers) for index in range(workers)]


class ArrivalSchedule:
    """One worker's planned send instants, handed out in time order, chunk by chunk.

    `take_until(t_s)` returns the instants (integer nanoseconds after the run's start) in
    [previous t, t_s). Memory is bounded by the chunk asked for, never by the run's length.
    """

    _POISSON_BATCH = 4096

    def __init__(self, share: WorkerShare) -> None:
        plan = share.plan
        assert isinstance(plan.load, OpenLoop)
        self._curve = RateCurve(plan.load, plan.total_s)
        self._count = share.count
        self._poisson = plan.load.arrival == "poisson"
        self._end_count = self._curve.total_count
        # One constant rate and evenly spaced arrivals: each chunk is computed directly (see `_take_steady`).
        steady_rate = self._curve.steady_rate
        self._steady_rate = steady_rate if steady_rate and not self._poisson else None
        if self._poisson:
            self._rng = np.random.default_rng([plan.seed, share.index, share.count])
            self._pending = np.empty(0, dtype=np.float64)  # counts drawn, not yet handed out
            self._next_u = 0.0
        else:
            self._next_index = share.index  # next global arrival index this worker owns
        self.exhausted = False

    @property
    def expected_total(self) -> float:
        """Expected instants for this worker over the whole run."""
        return self._end_count / self._count

    def take_until(self, t_s: float) -> np.ndarray:
        """Planned instants (ns after start) strictly before `t_s`, not handed out before."""
        if self.exhausted:
            return np.empty(0, dtype=np.int64)
        if self._steady_rate is not None:
            return self._take_steady(t_s, self._steady_rate)
        u_limit = self._curve.counts_at_time(t_s)
        # A small margin against rounding in Λ and Λ⁻¹; whatever falls at or after t_s is given back.
        counts = self._counts_up_to(min(u_limit * (1.0 + 1e-9) + self._count, self._end_count))
        times = self._curve.time_of_counts(counts)
        keep = times < t_s
        self._give_back(counts[~keep])
        if self._no_more_counts() and not self._has_pending():
            self.exhausted = True
        return np.round(times[keep] * 1e9).astype(np.int64)

    def _take_steady(self, t_s: float, rate: float) -> np.ndarray:
        """`take_until` at one constant rate: arrival i is at i / rate, so the chunk is this worker's
        indexes below t_s · rate, in four array operations. An engine takes a chunk every few tens of
        milliseconds, between two sends, with the loop's caches cold: there each array operation
        costs several times what it does in a loop of them, so their number is what counts."""
        stop = math.ceil(min(t_s * rate, self._end_count))
        first, step = self._next_index, self._count
        indexes = np.arange(first, max(stop, first), step, dtype=np.int64)
        self._next_index = first + len(indexes) * step
        if self._next_index >= self._end_count:
            self.exhausted = True
        return np.rint(indexes * (1e9 / rate)).astype(np.int64)

    # Count-space bookkeeping, constant and Poisson.

    def _counts_up_to(self, u_max: float) -> np.ndarray:
        if not self._poisson:
            stop = int(np.ceil(u_max))
            indexes = np.arange(self._next_index, max(stop, self._next_index), self._count, dtype=np.float64)
            indexes = indexes[indexes < self._end_count]
            if len(indexes):
                self._next_index = int(indexes[-1]) + self._count
            return indexes
        while self._next_u < u_max:
            gaps = self._rng.exponential(self._count, self._POISSON_BATCH)
            drawn = self._next_u + np.cumsum(gaps)
            self._next_u = float(drawn[-1])
            self._pending = np.concatenate((self._pending, drawn))
        ready = self._pending[(self._pending < u_max) & (self._pending < self._end_count)]
        self._pending = self._pending[len(ready) :]
        return ready

    def _give_back(self, counts: np.ndarray) -> None:
        if len(counts) == 0:
            return
        if self._poisson:
            self._pending = np.concatenate((counts, self._pending))
        else:
            self._next_index = int(counts[0])

    def _no_more_counts(self) -> bool:
        if self._poisson:
            return self._next_u >= self._end_count
        return self._next_index >= self._end_count

    def _has_pending(self) -> bool:
        return self._poisson and bool(np.any(self._pending < self._end_count))
