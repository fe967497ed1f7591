"""The worker's own CPU use: the generator checks itself (DESIGN.md, measurement rules)."""

from __future__ import annotations

import os


def process_cpu_seconds() -> float:
    """User plus system CPU seconds of this process so far (all threads)."""
    times = os.times()
    return times.user + times.system
