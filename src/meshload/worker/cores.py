"""Keeping a worker's helpers off the cores its engine is pinned to.

When a worker is pinned to some of the machine's cores (`taskset`, a cpuset), what helps the engine
(its fold process; the worker's own threads when the engine runs in a child) runs on the others: on
the engine's cores it would take turns with the loop that paces the sends, which is what it is there
to spare. A worker that is not pinned is left to the scheduler.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable


def other_cores() -> set[int]:
    """The machine's cores this thread is not pinned to (none when it may run anywhere)."""
    try:
        return set(range(os.cpu_count() or 1)) - os.sched_getaffinity(0)
    except OSError:
        return set()


def keep_off_our_cores(pid: int) -> None:
    """Run process `pid` (a child) on the cores this one is not pinned to, if there are any."""
    others = other_cores()
    # A container may allow fewer cores than it reports: then it stays where it is.
    with contextlib.suppress(OSError):
        if others:
            os.sched_setaffinity(pid, others)


def threads_off_our_cores() -> Callable[[], None]:
    """Move every thread of this process to the cores it is not pinned to (for the time an engine of
    its own runs in a child on them); returns what puts them back."""
    others = other_cores()
    moved: list[tuple[int, set[int]]] = []
    if not others:
        return lambda: None
    for task in os.listdir("/proc/self/task"):
        tid = int(task)
        try:
            before = os.sched_getaffinity(tid)
            os.sched_setaffinity(tid, others)
        except OSError:
            continue  # ended meanwhile, or not allowed
        moved.append((tid, before))

    def restore() -> None:
        for tid, before in moved:
            with contextlib.suppress(OSError):  # that thread has ended
                os.sched_setaffinity(tid, before)

    return restore
