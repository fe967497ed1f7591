"""The analytic truth of corrected latency against the stall server (`http_servers.py` kind "stall"),
for a window that need not span whole stall periods."""

from __future__ import annotations

import math


def stall_truth_ms(percentile: float, start_s: float, end_s: float, stall_s: float, period_s: float) -> float:
    """The corrected latency at `percentile` of requests planned evenly over [start_s, end_s) (wall clock)
    against a server that holds every answer while `time % period_s < stall_s`.

    A request planned φ into a stall cannot complete before the stall ends: its latency is
    stall_s − φ; outside a stall it is about 0 (tests/worker/test_open_loop.py derives this). So
    P(latency > x) is the share of [start_s, end_s) lying in the first stall_s − x of a stall, counted
    over the window's actual phase (it needs not span whole periods), and the percentile solves
    P(latency > x) = 1 − percentile/100."""

    def tail(x_s: float) -> float:
        covered = 0.0
        for k in range(math.floor(start_s / period_s) - 1, math.ceil(end_s / period_s) + 1):
            low, high = k * period_s, k * period_s + stall_s - x_s
            covered += max(0.0, min(high, end_s) - max(low, start_s))
        return covered / (end_s - start_s)

    low_s, high_s = 0.0, stall_s
    for _ in range(60):
        middle = (low_s + high_s) / 2
        low_s, high_s = (middle, high_s) if tail(middle) > 1 - percentile / 100 else (low_s, middle)
    return low_s * 1000
