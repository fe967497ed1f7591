"""Where a run is cut into interval records: every `interval_s`, and exactly at the warm-up's end,
so that no record mixes warm-up and measured time."""

from __future__ import annotations

import math

_EPSILON_S = 1e-9


def interval_cuts_s(total_s: float, warmup_s: float, interval_s: float) -> list[float]:
    """Cut offsets (seconds after start) strictly inside (0, total_s), ascending.

    The final record runs from the last cut to the end of the drain after `total_s`."""
    if interval_s <= 0:
        raise ValueError("interval_s must be positive")
    cuts = {round(k * interval_s, 9) for k in range(1, math.ceil(total_s / interval_s - _EPSILON_S))}
    if _EPSILON_S < warmup_s < total_s - _EPSILON_S:
        cuts.add(round(warmup_s, 9))
    return sorted(cut for cut in cuts if _EPSILON_S < cut < total_s - _EPSILON_S)


def is_warmup(interval_end_s: float, warmup_s: float) -> bool:
    """An interval belongs to the warm-up when it ends at or before the warm-up's end."""
    return warmup_s > 0 and interval_end_s <= warmup_s + _EPSILON_S
