"""The generator's self-check: did meshload send what the plan asked, when it asked?

A run is **invalid** when its numbers cannot be trusted as a measurement of the target: the generator
fell behind its schedule, skipped sends, saturated a worker's CPU, disagreed with itself about the
time, or measured nothing. It is **degraded** when it is still a measurement but of less load or
fewer workers than planned (a worker was lost and the run went on). Each reason is one sentence for
a human; the report shows them all, and the terminal says so. Results are never silently wrong.

The thresholds are named here, once; nothing else compares against a literal.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..scenarios.plan import OpenLoop
from .run_result import RunResult

#: Schedule lag (actual send − planned instant) p99 above this means the generator did not keep up
#: with an open-loop schedule, so the corrected latencies include its own delay.
LAG_P99_LIMIT_MS = 10.0
#: Planned sends never made, as a fraction of planned sends (sent + missed).
MISSED_FRACTION_LIMIT = 0.001
#: Sends later than the engine's late threshold, as a fraction of sends (fortio warns above 5%).
LATE_FRACTION_LIMIT = 0.05
#: A worker using this fraction of one core in some interval cannot be trusted to send on time
#: (locust warns at 90% for the same reason).
WORKER_CPU_SATURATION = 0.9
#: Workers' clocks further than this from the Redis server's clock make the common start instant
#: (and so the split schedule) unreliable.
CLOCK_OFFSET_LIMIT_MS = 50.0
#: Records must cover at least this fraction of the planned measured duration.
COVERAGE_FRACTION_LIMIT = 0.9


@dataclass
class Verdict:
    """The outcome of the self-check."""

    valid: bool = True
    degraded: bool = False
    reasons: list[str] = field(default_factory=list)  # why invalid, then why degraded


def assess(result: RunResult) -> Verdict:
    """Check a merged result against every rule above."""
    invalid: list[str] = []
    degraded: list[str] = []
    plan = result.plan

    if result.completed == 0 and result.error_count == 0:
        invalid.append("no request completed in the measured part of the run")

    if isinstance(plan.load, OpenLoop) and result.lag.total_count > 0:
        lag_p99_ms = result.lag.value_at_percentile(99.0) / 1000.0
        if lag_p99_ms > LAG_P99_LIMIT_MS:
            invalid.append(
                f"the generator fell behind its schedule: send lag p99 {lag_p99_ms:.1f} ms is above "
                f"{LAG_P99_LIMIT_MS:g} ms (use more workers or a lower rate)"
            )

    planned = result.sent + result.missed
    if planned > 0 and result.missed / planned > MISSED_FRACTION_LIMIT:
        invalid.append(
            f"{result.missed} of {planned} planned requests were never sent "
            f"({100.0 * result.missed / planned:.2f}% > {100.0 * MISSED_FRACTION_LIMIT:g}%)"
        )
    if result.sent > 0 and result.late / result.sent > LATE_FRACTION_LIMIT:
        invalid.append(
            f"{result.late} of {result.sent} requests were sent late "
            f"({100.0 * result.late / result.sent:.1f}% > {100.0 * LATE_FRACTION_LIMIT:g}%)"
        )

    saturated = [w for w in result.workers if w.max_cpu_fraction >= WORKER_CPU_SATURATION]
    if saturated:
        busiest = max(saturated, key=lambda w: w.max_cpu_fraction)
        invalid.append(
            f"{len(saturated)} worker(s) saturated their CPU (busiest: {busiest.id} at "
            f"{100.0 * busiest.max_cpu_fraction:.0f}% of a core, limit "
            f"{100.0 * WORKER_CPU_SATURATION:.0f}%); add workers"
        )

    if result.max_clock_offset_ms > CLOCK_OFFSET_LIMIT_MS:
        invalid.append(
            f"a worker's clock is {result.max_clock_offset_ms:.1f} ms away from the Redis server's "
            f"(limit {CLOCK_OFFSET_LIMIT_MS:g} ms); synchronise the hosts' clocks (NTP)"
        )

    if result.clamped > 0:
        invalid.append(f"{result.clamped} latencies were above the histogram's range and were recorded at its top")

    if result.measured_s < plan.duration_s * COVERAGE_FRACTION_LIMIT:
        invalid.append(
            f"the records cover {result.measured_s:.1f} s of the planned {plan.duration_s:g} s measured duration"
        )

    lost = [w.id for w in result.workers if w.lost]
    if lost:
        degraded.append(
            f"{len(lost)} of {len(result.workers)} worker(s) lost during the run "
            f"({', '.join(sorted(lost)[:5])}{', ...' if len(lost) > 5 else ''}); "
            "their records up to the loss are kept, the load after it was not sent"
        )
    if result.records_dropped:
        degraded.append(
            f"the interval log holds only part of the run: {result.records_dropped} records were not "
            "kept (memory bound); the totals and percentiles are complete"
        )

    return Verdict(valid=not invalid, degraded=bool(lost), reasons=invalid + degraded)
