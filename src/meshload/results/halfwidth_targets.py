"""Half-width targets as people write them: `--target-halfwidth p50=0.05ms,p99=0.5ms`.

Each entry is `metric=value`. Latency percentiles (p50, p90, p99, p99.9) take a duration with its unit
(`0.05ms`, `50us`, `50µs`, `0.5ms`, `1.5s`), read like every other duration of meshload; a bare number is
refused, since "0.05" could mean seconds or milliseconds. The other metrics take a number in their
unit, optionally followed by it: `errors=0.1%`, `cpu=20mcores`, `memory=2MB` (also written by their
keys: `error_rate_pct`, `proxy_cpu_mcores_per_krps`, `proxy_mem_mb`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UsageError
from ..scenarios.durations import duration_ns
from .cell_summary import METRIC_BY_KEY

OPTION = "--target-halfwidth"
#: Short names people write, beside the metrics' own keys.
ALIASES: dict[str, str] = {
    "p50": "p50_ms",
    "p90": "p90_ms",
    "p99": "p99_ms",
    "p99.9": "p99.9_ms",
    "errors": "error_rate_pct",
    "error_rate": "error_rate_pct",
    "cpu": "proxy_cpu_mcores_per_krps",
    "memory": "proxy_mem_mb",
    "mem": "proxy_mem_mb",
}
_NUMBER = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(\S*)")
_EXAMPLE = "write e.g. p50=0.05ms,p99=0.5ms"


@dataclass(frozen=True)
class HalfWidthTarget:
    """The widest 95% interval half-width wanted for one metric, in the metric's unit."""

    metric: str  # a key of `cell_summary.METRICS`
    half_width: float
    written: str  # the entry as the user wrote it, for reports ("p50=0.05ms")


def parse_halfwidth_targets(text: str, *, option: str = OPTION) -> tuple[HalfWidthTarget, ...]:
    """Every `metric=value` entry of a comma-separated list; a bad one raises `UsageError`, one line
    naming the option and the entry."""
    targets: list[HalfWidthTarget] = []
    entries = [entry.strip() for entry in text.split(",")]
    if not any(entries):
        raise UsageError(f"{option}: no target given; {_EXAMPLE}")
    for entry in entries:
        if not entry:
            raise UsageError(f'{option}: an empty entry in "{text}"; separate targets with single commas')
        target = _parse_entry(entry, option)
        if any(found.metric == target.metric for found in targets):
            raise UsageError(f"{option}: {target.metric} is given twice; give each metric once")
        targets.append(target)
    return tuple(targets)


def _parse_entry(entry: str, option: str) -> HalfWidthTarget:
    name, equals, value = entry.partition("=")
    name, value = name.strip(), value.strip()
    if not equals or not name or not value:
        raise UsageError(f'{option}: "{entry}" is not metric=value; {_EXAMPLE}')
    metric = ALIASES.get(name.lower(), name)
    if metric not in METRIC_BY_KEY:
        known = ", ".join([*ALIASES, *METRIC_BY_KEY])
        raise UsageError(f'{option}: "{name}" is not a compared metric; use one of {known}')
    unit = METRIC_BY_KEY[metric].unit
    half_width = _latency_ms(entry, value, option) if unit == "ms" else _in_unit(entry, value, unit, option)
    if half_width <= 0:
        raise UsageError(f'{option}: "{entry}" must be above 0')
    return HalfWidthTarget(metric, half_width, entry)


def _latency_ms(entry: str, value: str, option: str) -> float:
    bare = _NUMBER.fullmatch(value)
    if bare is not None and not bare.group(2):
        raise UsageError(f'{option}: "{entry}" needs a unit; write e.g. {entry}ms or {entry}us')
    try:
        return duration_ns(value) / 1e6
    except ValueError:
        raise UsageError(f'{option}: "{entry}" is not a duration; {_EXAMPLE}') from None


def _in_unit(entry: str, value: str, unit: str, option: str) -> float:
    match = _NUMBER.fullmatch(value)
    if match is None or match.group(2) not in ("", unit):
        raise UsageError(f'{option}: "{entry}" must be a number in {unit}, e.g. {entry.partition("=")[0]}=1{unit}')
    return float(match.group(1))
