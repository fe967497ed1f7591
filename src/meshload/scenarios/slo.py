"""A service-level objective as written: `p99<50ms` and an error budget `<0.1%`. The knee search
(`coordinator.find_max`) finds the highest rate that meets one; `meshload run --find-max` and a
study plan's `find_max:` both write it this way."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UsageError

_SLO = re.compile(r"^\s*p(?P<percentile>\d+(?:\.\d+)?)\s*<\s*(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>us|ms|s)\s*$")
_ERRORS = re.compile(r"^\s*<\s*(?P<value>\d+(?:\.\d+)?)\s*%\s*$")
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass(frozen=True)
class Slo:
    """What a step must meet: a latency percentile under a bound, and failed requests under a share."""

    percentile: float
    latency_ms: float
    max_error_fraction: float = 0.0

    def describe(self) -> str:
        return f"p{self.percentile:g}<{self.latency_ms:g}ms, errors<{self.max_error_fraction * 100:g}%"


def parse_slo(latency: str, errors: str | None = None, *, names: tuple[str, str] = ("--slo", "--errors")) -> Slo:
    """`--slo 'p99<50ms'` and `--errors '<0.1%'`; a bad value is one UsageError line naming the
    option (`names`: how the caller calls the two)."""
    match = _SLO.match(latency)
    if match is None or not 0 < float(match["percentile"]) < 100:
        raise UsageError(f"{names[0]}: {latency!r} is not a latency objective; use e.g. 'p99<50ms' or 'p99.9<200ms'")
    max_errors = 0.0
    if errors is not None:
        error_match = _ERRORS.match(errors)
        if error_match is None or float(error_match["value"]) >= 100:
            raise UsageError(f"{names[1]}: {errors!r} is not an error budget; use e.g. '<0.1%'")
        max_errors = float(error_match["value"]) / 100.0
    return Slo(float(match["percentile"]), float(match["value"]) * _UNIT_MS[match["unit"]], max_errors)
