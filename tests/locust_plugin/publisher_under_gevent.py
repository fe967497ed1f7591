"""Run by test_publisher_under_gevent.py in a process of its own, patched by Locust as a Locust process is:
the plugin's RecordPublisher (a thread, so a greenlet here) delivers records while Redis answers, keeps
them while Redis is frozen without holding up other greenlets, and delivers them once it answers again.

    python publisher_under_gevent.py REDIS_URL REDIS_PID   ->  one JSON line of what it saw
"""

import locust  # noqa: F401, I001 - first: gevent's monkey-patching, exactly as in a Locust process

import itertools
import json
import os
import signal
import sys
import threading
import time

import gevent

from meshload.pipeline import wire
from meshload.pipeline.publisher import RecordPublisher
from meshload.results.interval import IntervalRecord

TICK_S = 0.01


def record(seq: int) -> IntervalRecord:
    return IntervalRecord(worker_id="locust-0", seq=seq, run_id="gevent", offset_s=float(seq), duration_s=1.0)


def wait_until(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        gevent.sleep(0.01)
    return condition()


def main() -> None:
    url, redis_pid = sys.argv[1], int(sys.argv[2])
    ticks: list[float] = []

    def ticker() -> None:  # stands for the users: greenlets that must keep running
        while True:
            ticks.append(time.monotonic())
            gevent.sleep(TICK_S)

    users = gevent.spawn(ticker)
    publisher = RecordPublisher(url, wire.RunKeys("gevent")).start()
    for seq in range(5):
        publisher.submit(record(seq))
    delivered_before = wait_until(lambda: publisher.delivered == 5, 10.0)

    os.kill(redis_pid, signal.SIGSTOP)  # Redis frozen: XADD waits for an answer that does not come
    try:
        paused_at = time.monotonic()
        for seq in range(5, 10):
            publisher.submit(record(seq))
        gevent.sleep(1.5)
        during = [t for t in ticks if t >= paused_at]
        delivered_while_paused = publisher.delivered
    finally:
        os.kill(redis_pid, signal.SIGCONT)
    all_delivered = publisher.close(15.0)
    users.kill()
    gaps = [b - a for a, b in itertools.pairwise(during)]
    print(
        json.dumps(
            {
                "thread_is_greenlet": threading.Thread.__module__.startswith("gevent"),
                "delivered_before": delivered_before,
                "delivered_while_paused": delivered_while_paused,
                "ticks_while_paused": len(during),
                "longest_gap_s": max(gaps) if gaps else None,
                "all_delivered": all_delivered,
                "delivered": publisher.delivered,
            }
        )
    )


main()
