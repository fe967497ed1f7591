"""The generator's self-check, in one place: did meshload send what the plan asked, when it asked, and
did every record reach the coordinator?

A run is **invalid** when its numbers cannot be trusted as a measurement of the target: the generator
fell behind its schedule, skipped sends, saturated a worker's CPU, disagreed with itself about the
time, measured nothing, or records were lost on the way. It is **degraded** when it is still a
measurement but of less load, fewer workers or less detail than planned. Results are never silently
wrong: the report shows every reason and the terminal says so.

Each reason is a `Rule`: a name, its effect (invalid or degraded) and a check that returns the
sentence for a human when the rule is broken. Adding a reason is adding one rule to `RULES`. The
thresholds are named here, once; nothing else compares against a literal, and nothing else decides.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

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
#: Lost workers named in the reason; more are counted, not listed.
LOST_WORKERS_NAMED = 5

Effect = Literal["invalid", "degraded"]


@dataclass(frozen=True)
class Rule:
    """One reason a run can fail its self-check: `check` returns the sentence when it does."""

    name: str
    effect: Effect
    check: Callable[[RunResult], str | None]


@dataclass(frozen=True)
class Finding:
    """A rule the run broke, and what to tell the reader."""

    rule: str
    effect: Effect
    message: str


@dataclass
class Verdict:
    """The outcome of the self-check: every broken rule, invalid ones first."""

    findings: list[Finding] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not any(f.effect == "invalid" for f in self.findings)

    @property
    def degraded(self) -> bool:
        return any(f.effect == "degraded" for f in self.findings)

    @property
    def reasons(self) -> list[str]:
        """The sentences, why invalid first, then why degraded."""
        return [f.message for f in self.findings]


def assess(result: RunResult) -> Verdict:
    """Check a merged result against every rule."""
    findings = []
    for rule in RULES:
        message = rule.check(result)
        if message is not None:
            findings.append(Finding(rule.name, rule.effect, message))
    findings.sort(key=lambda f: f.effect != "invalid")  # stable: invalid first, each in rule order
    return Verdict(findings)


def judge(result: RunResult) -> None:
    """Write the verdict into `result` (`valid`, `degraded`, `validity`)."""
    verdict = assess(result)
    result.valid, result.degraded, result.validity = verdict.valid, verdict.degraded, verdict.reasons


# -- the rules -------------------------------------------------------------------------------------


def _nothing_measured(result: RunResult) -> str | None:
    if result.completed == 0 and result.error_count == 0:
        return "no request completed in the measured part of the run"
    return None


def _fell_behind(result: RunResult) -> str | None:
    if not isinstance(result.plan.load, OpenLoop) or result.lag.total_count == 0:
        return None
    lag_p99_ms = result.lag.value_at_percentile(99.0) / 1000.0
    if lag_p99_ms <= LAG_P99_LIMIT_MS:
        return None
    return (
        f"the generator fell behind its schedule: send lag p99 {lag_p99_ms:.1f} ms is above "
        f"{LAG_P99_LIMIT_MS:g} ms (use more workers or a lower rate)"
    )


def _never_sent(result: RunResult) -> str | None:
    planned = result.sent + result.missed
    if planned == 0 or result.missed / planned <= MISSED_FRACTION_LIMIT:
        return None
    return (
        f"{result.missed} of {planned} planned requests were never sent "
        f"({100.0 * result.missed / planned:.2f}% > {100.0 * MISSED_FRACTION_LIMIT:g}%)"
    )


def _sent_late(result: RunResult) -> str | None:
    if result.sent == 0 or result.late / result.sent <= LATE_FRACTION_LIMIT:
        return None
    return (
        f"{result.late} of {result.sent} requests were sent late "
        f"({100.0 * result.late / result.sent:.1f}% > {100.0 * LATE_FRACTION_LIMIT:g}%)"
    )


def _cpu_saturated(result: RunResult) -> str | None:
    saturated = [w for w in result.workers if w.max_cpu_fraction >= WORKER_CPU_SATURATION]
    if not saturated:
        return None
    busiest = max(saturated, key=lambda w: w.max_cpu_fraction)
    return (
        f"{len(saturated)} worker(s) saturated their CPU (busiest: {busiest.id} at "
        f"{100.0 * busiest.max_cpu_fraction:.0f}% of a core, limit {100.0 * WORKER_CPU_SATURATION:.0f}%); add workers"
    )


def _clocks_apart(result: RunResult) -> str | None:
    if result.max_clock_offset_ms <= CLOCK_OFFSET_LIMIT_MS:
        return None
    return (
        f"a worker's clock is {result.max_clock_offset_ms:.1f} ms away from the Redis server's "
        f"(limit {CLOCK_OFFSET_LIMIT_MS:g} ms); synchronise the hosts' clocks (NTP)"
    )


def _clamped(result: RunResult) -> str | None:
    if result.clamped == 0:
        return None
    return f"{result.clamped} latencies were above the histogram's range and were recorded at its top"


def _short_coverage(result: RunResult) -> str | None:
    if result.measured_s >= result.plan.duration_s * COVERAGE_FRACTION_LIMIT:
        return None
    return f"the records cover {result.measured_s:.1f} s of the planned {result.plan.duration_s:g} s measured duration"


def _stream_lost(result: RunResult) -> str | None:
    if result.streams_lost == 0:
        return None
    return (
        "Redis lost the records stream during the run (restarted without persistence?); "
        "records not yet collected were lost"
    )


def _unreadable_records(result: RunResult) -> str | None:
    if result.malformed_records == 0:
        return None
    return f"{result.malformed_records} records could not be read (a worker of another meshload version?)"


def _workers_lost(result: RunResult) -> str | None:
    lost = sorted(w.id for w in result.workers if w.lost)
    if not lost:
        return None
    named = ", ".join(lost[:LOST_WORKERS_NAMED]) + (", ..." if len(lost) > LOST_WORKERS_NAMED else "")
    return (
        f"{len(lost)} of {len(result.workers)} worker(s) lost during the run ({named}); "
        "their records up to the loss are kept, the load after it was not sent"
    )


def _log_incomplete(result: RunResult) -> str | None:
    if result.records_dropped == 0:
        return None
    return (
        f"the interval log holds only part of the run: {result.records_dropped} records were not "
        "kept (memory bound); the totals and percentiles are complete"
    )


#: Every rule, in the order the report lists their reasons (invalid ones first).
RULES: tuple[Rule, ...] = (
    Rule("nothing-measured", "invalid", _nothing_measured),
    Rule("fell-behind", "invalid", _fell_behind),
    Rule("never-sent", "invalid", _never_sent),
    Rule("sent-late", "invalid", _sent_late),
    Rule("cpu-saturated", "invalid", _cpu_saturated),
    Rule("clocks-apart", "invalid", _clocks_apart),
    Rule("clamped", "invalid", _clamped),
    Rule("short-coverage", "invalid", _short_coverage),
    Rule("stream-lost", "invalid", _stream_lost),
    Rule("unreadable-records", "invalid", _unreadable_records),
    Rule("workers-lost", "degraded", _workers_lost),
    Rule("log-incomplete", "degraded", _log_incomplete),
)
