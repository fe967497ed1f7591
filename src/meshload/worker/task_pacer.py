"""Open-loop pacing of Locust-style tasks, run by users that are greenlets.

A `TaskPacer` holds this process's share of one arrival schedule (split across processes exactly as
`scenarios.schedule` splits a plan across meshload workers). Every task run takes the next planned
instant: a user that finishes a task asks for its wait (`wait_s`) and sleeps until the instant it
took; when all users are busy, the next free one takes the overdue instant and starts at once, and
the delay is the schedule lag. So the users together start tasks at the planned rate, however many
of them run, and a request's latency can be measured from the instant its task was planned for.

The task a greenlet is running is kept on the greenlet itself (`TASK_ATTRIBUTE`): a two-item list
[planned instant ns, lag ns], the lag filled in by the task's first request (−1 until then). Locust
runs a user's first task as soon as the user starts, before any wait: that task takes the next
instant if it is already due when its first request completes, and otherwise runs outside the
schedule, measured from its send (`locust_events.start_first_task`). Requests of a task share its
lag: the correction is for the task starting late, not for the requests inside it waiting on one
another (that is the journey itself).
"""

from __future__ import annotations

from collections.abc import Callable
from time import monotonic_ns
from typing import Any, Literal

import numpy as np
from gevent import getcurrent, sleep

from ..scenarios.plan import OpenLoop, Plan, Stage, Target
from ..scenarios.schedule import ArrivalSchedule, WorkerShare

#: Attribute of a user's greenlet holding its current task: [planned_ns, lag_ns] (lag −1: not yet known).
TASK_ATTRIBUTE = "meshload_task"
#: Attribute of a wait-time function that names its pacer (`pacer_of` finds it through the user).
PACER_ATTRIBUTE = "meshload_pacer"
#: A pacer's schedule runs this long at most: Locust tests run until they are stopped.
HORIZON_S = 30 * 24 * 3600.0
#: Planned instants are fetched from the schedule this far ahead at a time.
REFILL_S = 0.25
#: How often an idle user (its pacer has no instant for it: no test, no share for this process, or
#: the schedule is over) looks for an instant again.
IDLE_WAIT_S = 1.0
#: A task started more than this after its planned instant counts as sent late. gevent's timers wake
#: on the event loop's millisecond tick (epoll), so a sleeping user wakes up to 1 ms after its
#: instant even on an idle machine; the uvloop engine's kernel timers allow its 1 ms limit.
GEVENT_LATE_THRESHOLD_US = 2_000
# Arrival schedules are built from a Plan, which names a target; a pacer's plan is never sent anywhere.
_UNUSED_TARGET = (Target.model_validate({"url": "http://pacer.invalid/"}),)

Arrival = Literal["constant", "poisson"]


class TaskPacer:
    """One open-loop schedule for the task runs of a process's users (see the module docstring)."""

    @classmethod
    def for_plan(cls, load: OpenLoop, total_s: float) -> TaskPacer:
        """The pacer of a plan's open loop (its rate, arrivals and stages), for a run of `total_s`."""
        return cls(load.rate, load.arrival, stages=load.stages, horizon_s=total_s)

    def __init__(
        self,
        rate: float,
        arrival: Arrival = "constant",
        *,
        stages: tuple[Stage, ...] = (),
        horizon_s: float = HORIZON_S,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"open_loop: the rate must be above 0 requests/s (got {rate!r})")
        if arrival not in ("constant", "poisson"):
            raise ValueError(f'open_loop: arrival must be "constant" or "poisson" (got {arrival!r})')
        self.rate = float(rate)
        self.arrival: Arrival = arrival
        self.stages = stages  # ramps from `rate`, as in a plan's open loop; they last `horizon_s` together
        self.horizon_s = horizon_s
        self._schedule: ArrivalSchedule | None = None
        self._start_ns = 0
        self._pending = np.empty(0, dtype=np.int64)  # planned instants fetched, ns after start
        self._next = 0  # index of the next instant to hand out
        self._fetched_until_s = 0.0
        self.claimed = 0  # instants taken by tasks since `begin`

    @property
    def active(self) -> bool:
        return self._schedule is not None

    def begin(self, *, index: int, count: int, start_ns: int, seed: int = 0) -> None:
        """Take share `index` of `count` of the schedule, starting at `start_ns` (monotonic ns)."""
        plan = Plan.model_validate(
            {
                "targets": _UNUSED_TARGET,
                "load": OpenLoop(rate=self.rate, arrival=self.arrival, stages=self.stages),
                "duration_s": self.horizon_s,
                "seed": seed,
            }
        )
        self._schedule = WorkerShare(plan, index, count).schedule()
        self._start_ns = start_ns
        self._pending = np.empty(0, dtype=np.int64)
        self._next = 0
        self._fetched_until_s = 0.0
        self.claimed = 0

    def end(self, stop_ns: int) -> int:
        """Stop handing out instants; returns how many planned before `stop_ns` were never taken."""
        schedule = self._schedule
        if schedule is None:
            return 0
        self._schedule = None
        stop_offset_ns = stop_ns - self._start_ns
        unclaimed = int(np.count_nonzero(self._pending[self._next :] < stop_offset_ns))
        if stop_offset_ns / 1e9 > self._fetched_until_s:
            unclaimed += len(schedule.take_until(stop_offset_ns / 1e9))
        return unclaimed

    def claim_ns(self) -> int | None:
        """The next planned instant (monotonic ns), now taken by the caller's task; None when the
        schedule has no more (it ends at its horizon, or it was ended)."""
        instant = self._next_instant_ns()
        if instant is not None:
            self._take()
        return instant

    def claim_due_ns(self, now_ns: int) -> int | None:
        """The next planned instant if it is due by `now_ns` (then taken), else None (nothing taken)."""
        instant = self._next_instant_ns()
        if instant is None or instant > now_ns:
            return None
        self._take()
        return instant

    def wait_s(self, now_ns: int) -> float:
        """For a user's wait time: take the next instant for the calling greenlet's next task and
        return how long to sleep until it (0 when it is already due). While there is no instant to take
        (no schedule yet, or none left) the user stays idle here, looking again every `IDLE_WAIT_S`: a
        task run outside the schedule would be measured from an instant nobody planned for it. (Locust
        calls the wait time in the user's waiting state, so stopping the user ends the wait at once.)"""
        planned_ns = self.claim_ns()
        while planned_ns is None:
            sleep(IDLE_WAIT_S)
            planned_ns = self.claim_ns()
            now_ns = monotonic_ns()
        start_task(getcurrent(), planned_ns)
        return max(planned_ns - now_ns, 0) / 1e9

    def _next_instant_ns(self) -> int | None:
        if self._schedule is None:
            return None
        if self._next >= len(self._pending) and not self._refill(self._schedule):
            return None
        return int(self._pending[self._next]) + self._start_ns

    def _take(self) -> None:
        self._next += 1
        self.claimed += 1

    def _refill(self, schedule: ArrivalSchedule) -> bool:
        """Fetch the next instants; False when the schedule has none left."""
        while not schedule.exhausted:
            self._fetched_until_s += REFILL_S
            instants = schedule.take_until(self._fetched_until_s)
            if len(instants):
                self._pending = instants
                self._next = 0
                return True
        return False


def start_task(greenlet: Any, planned_ns: int) -> list[int]:
    """Mark `greenlet` as running a task planned for `planned_ns` (lag not known yet)."""
    task = getattr(greenlet, TASK_ATTRIBUTE, None)
    if isinstance(task, list):
        task[0] = planned_ns
        task[1] = -1
        return task
    task = [planned_ns, -1]
    setattr(greenlet, TASK_ATTRIBUTE, task)
    return task


def paced_wait_time(pacer: TaskPacer) -> Callable[[object], float]:
    """A Locust wait time (a User's `wait_time`) that takes each next task's instant from `pacer`;
    `pacer_of` finds the pacer through it."""

    def wait_time(_user: object) -> float:
        return pacer.wait_s(monotonic_ns())

    setattr(wait_time, PACER_ATTRIBUTE, pacer)
    return wait_time


def pacer_of(user: object) -> TaskPacer | None:
    """The pacer behind a user's wait time, if it is an open-loop one."""
    pacer = getattr(getattr(user, "wait_time", None), PACER_ATTRIBUTE, None)
    return pacer if isinstance(pacer, TaskPacer) else None
