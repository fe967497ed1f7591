"""`open_loop(total_rps)`: a Locust wait time that makes all users together start tasks at planned instants.

    class Shopper(FastHttpUser):
        wait_time = meshload.locust.open_loop(200, arrival="poisson")

The total rate is spread over however many users run, on every worker: each Locust worker takes its
share of one arrival schedule (constant spacing interleaved across workers, or independent Poisson
streams), and each of its users, when it finishes a task, takes the next planned instant and sleeps
until it. A user that is late for its instant starts at once; meshload measures that task's
requests from the planned instant (corrected) and keeps the delay as schedule lag. The pacers are
started and stopped with each test by the plugin (`plugin.py`).
"""

from __future__ import annotations

from collections.abc import Callable

from ..worker.task_pacer import Arrival, TaskPacer, paced_wait_time

#: Every pacer made by `open_loop` in this process (locustfiles make them at import).
PACERS: list[TaskPacer] = []


def open_loop(total_rps: float, arrival: Arrival = "constant") -> Callable[[object], float]:
    """A wait time for a Locust User class: tasks start at `total_rps` per second, all users and all
    workers together, with "constant" spacing or "poisson" arrivals."""
    pacer = TaskPacer(total_rps, arrival)
    PACERS.append(pacer)
    return paced_wait_time(pacer)
