"""Durations as people write them ("30s", "5m", "1m30s", "250ms") and as Go prints them.

Parsing accepts Go's `time.ParseDuration` units (h, m, s, ms, us/µs, ns), a sequence of them
("1h30m", "1m30.5s"), and a bare number, which means seconds. Formatting follows Go's
`time.Duration.String()` exactly, because the SMP `duration` field is a Go duration ("1h0m0s").
"""

from __future__ import annotations

import re

from ..errors import UsageError

_NS_PER_UNIT = {
    "h": 3_600_000_000_000,
    "m": 60_000_000_000,
    "s": 1_000_000_000,
    "ms": 1_000_000,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign, as Go prints it
    "μs": 1_000,  # U+03BC Greek mu, which Go also accepts
    "ns": 1,
}
# Longest unit names first, so "ms" is not read as "m" followed by a stray "s".
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|us|µs|μs|ns|h|m|s)")
_BARE_NUMBER = re.compile(r"\d+(?:\.\d*)?|\.\d+")
_EXAMPLES = "use e.g. 30s, 5m, 1h"


def duration_ns(text: str) -> int:
    """The length of `text` in integer nanoseconds; `ValueError` says what is wrong with it."""
    cleaned = text.strip()
    if _BARE_NUMBER.fullmatch(cleaned):
        return round(float(cleaned) * 1e9)
    position = 0
    total_ns = 0
    for match in _PART.finditer(cleaned):
        if match.start() != position:
            break
        number, unit = match.groups()
        total_ns += round(float(number) * _NS_PER_UNIT[unit])
        position = match.end()
    if position == 0 or position != len(cleaned):
        raise ValueError(f'"{text}" is not a duration; {_EXAMPLES}')
    return total_ns


def parse_duration_s(text: str | float, *, option: str) -> float:
    """Seconds in a duration such as "30s", "5m", "1h", "1m30s", "250ms", "1.5s" or "90" (seconds).

    `option` names where the value came from (e.g. "--duration"); a bad value raises `UsageError`
    with one line: `--duration: "5x" is not a duration; use e.g. 30s, 5m, 1h`.
    """
    if isinstance(text, bool):  # bool is an int subclass; "true" is not a duration
        raise UsageError(f'{option}: "{text}" is not a duration; {_EXAMPLES}')
    if isinstance(text, (int, float)):
        if text < 0:
            raise UsageError(f'{option}: "{text}" is negative; {_EXAMPLES}')
        return float(text)
    try:
        return duration_ns(text) / 1e9
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None


def format_duration(seconds: float) -> str:
    """`seconds` as Go's `time.Duration.String()` prints it: "30s", "1m30s", "1h0m0s", "250ms"."""
    return format_duration_ns(round(seconds * 1e9))


def format_duration_ns(total_ns: int) -> str:
    """Integer nanoseconds as Go's `time.Duration.String()` prints them."""
    if total_ns == 0:
        return "0s"
    sign = "-" if total_ns < 0 else ""
    magnitude = abs(total_ns)
    for below_ns, fraction_digits, unit in _SUB_SECOND_UNITS:
        if magnitude < below_ns:
            return f"{sign}{_decimal(magnitude, fraction_digits)}{unit}"
    whole_s, fraction_ns = divmod(magnitude, 1_000_000_000)
    seconds = _decimal(whole_s % 60 * 1_000_000_000 + fraction_ns, 9) + "s"
    minutes, hours = whole_s // 60 % 60, whole_s // 3600
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}"
    return f"{sign}{minutes}m{seconds}" if minutes else f"{sign}{seconds}"


#: Below a second Go prints one unit: (below this many ns, digits of fraction, unit).
_SUB_SECOND_UNITS = ((1_000, 0, "ns"), (1_000_000, 3, "µs"), (1_000_000_000, 6, "ms"))


def _decimal(value: int, fraction_digits: int) -> str:
    """`value / 10**fraction_digits` with the fraction's trailing zeros (and a bare point) dropped."""
    whole, fraction = divmod(value, 10**fraction_digits)
    digits = f"{fraction:0{fraction_digits}d}".rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)
