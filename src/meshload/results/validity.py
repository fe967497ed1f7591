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
from .interval import is_failed_status
from .run_result import Reason, RunResult, TimePoint

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

#: A rule's effect on the run: invalid, degraded, or a note that changes neither (something happened
#: that the reader should know, and that the run recovered from in full).
Effect = Literal["invalid", "degraded", "note"]
#: A measured second in which more requests failed than succeeded is a second the target failed in.
#: Schedule lag and late sends within this many seconds of one are the failure's, not the generator's:
#: refused and reset connections are re-opened before the sends that follow.
FAILING_NEIGHBOURHOOD_S = 1.0
#: Failed requests named in the "nothing succeeded" reason, most frequent first.
FAILURES_NAMED = 3


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
        """The sentences, why invalid first, then why degraded, then notes."""
        return [f.message for f in self.findings]

    @property
    def causes(self) -> list[Reason]:
        """The findings as the result keeps them (and smp.json writes them): cause, effect, sentence."""
        return [Reason(f.rule, f.effect, f.message) for f in self.findings]


def assess(result: RunResult) -> Verdict:
    """Check a merged result against every rule."""
    findings = []
    for rule in RULES:
        message = rule.check(result)
        if message is not None:
            findings.append(Finding(rule.name, rule.effect, message))
    order = {"invalid": 0, "degraded": 1, "note": 2}
    findings.sort(key=lambda f: order[f.effect])  # stable: invalid first, each in rule order
    return Verdict(findings)


def judge(result: RunResult) -> None:
    """Write the verdict into `result` (`valid`, `degraded`, `validity`)."""
    verdict = assess(result)
    result.valid, result.degraded, result.validity = verdict.valid, verdict.degraded, verdict.reasons
    result.reasons = verdict.causes


# -- the rules -------------------------------------------------------------------------------------


def _nothing_measured(result: RunResult) -> str | None:
    if result.completed == 0 and result.error_count == 0:
        return "no request completed in the measured part of the run"
    return None


def _interrupted(result: RunResult) -> str | None:
    if not result.interrupted:
        return None
    return (
        f"the run was interrupted ({result.interrupted}) after {result.measured_s:.1f} s of the planned "
        f"{result.plan.duration_s:g} s measured duration; the figures cover only that part"
    )


def _nothing_succeeded(result: RunResult) -> str | None:
    answered = sum(result.status_codes.values())
    if answered + result.error_count == 0:
        return None  # nothing measured at all: its own rule
    succeeded = sum(count for code, count in result.status_codes.items() if not is_failed_status(code))
    if succeeded:
        return None
    failures = [(f"status {code}", n) for code, n in result.status_codes.items()] + list(result.errors.items())
    failures.sort(key=lambda pair: -pair[1])
    named = ", ".join(f"{what} x{count:,}" for what, count in failures[:FAILURES_NAMED])
    return (
        f"NOTHING SUCCEEDED: not one of the {answered + result.error_count:,} requests got a successful answer "
        f"({named}); the latencies are those of failures: check that the target is up and the URL is right"
    )


def _failing_seconds(result: RunResult) -> list[TimePoint]:
    """Measured seconds in which the target failed more requests than it answered well."""
    return [p for p in result.timeseries if not p.warmup and p.errors > 0 and p.errors > p.rate]


def _near_failures(result: RunResult, seconds: list[TimePoint]) -> bool:
    """Whether every one of `seconds` lies within the neighbourhood of a second the target failed in."""
    failing = [p.offset_s for p in _failing_seconds(result)]
    return bool(failing) and all(any(abs(p.offset_s - f) <= FAILING_NEIGHBOURHOOD_S for f in failing) for p in seconds)


def _target_failed(result: RunResult) -> str | None:
    failing = _failing_seconds(result)
    measured = [p for p in result.timeseries if not p.warmup]
    if not failing or len(failing) == len(measured):
        return None  # none, or every second: "nothing succeeded" or a target failing throughout says it
    kinds = sorted(result.errors.items(), key=lambda pair: -pair[1])[:FAILURES_NAMED]
    named = ", ".join(f"{kind} x{count:,}" for kind, count in kinds) or "error statuses"
    first = failing[0].offset_s
    return (
        f"the target failed in {len(failing)} of {len(measured)} measured seconds (first at {first:g} s: "
        f"{named}): the figures mix a working and a failing target. Look at the target (did a process of it "
        "die?); the schedule lag and late sends around those seconds are not counted against the generator"
    )


def _fell_behind(result: RunResult) -> str | None:
    if not isinstance(result.plan.load, OpenLoop) or result.lag.total_count == 0:
        return None
    behind = [p for p in result.timeseries if not p.warmup and p.lag_p99_ms > LAG_P99_LIMIT_MS]
    if behind and _near_failures(result, behind):
        return None  # the target's failure, said by its own rule
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
    late = [p for p in result.timeseries if not p.warmup and p.late]
    if late and _failing_seconds(result):
        # Late sends around the seconds the target failed in are the failure's (its own rule says so).
        own = sum(p.late for p in late if not _near_failures(result, [p]))
        if own / result.sent <= LATE_FRACTION_LIMIT:
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
    if result.interrupted:
        return None  # said by its own rule, with the signal
    if result.measured_s >= result.plan.duration_s * COVERAGE_FRACTION_LIMIT:
        return None
    return f"the records cover {result.measured_s:.1f} s of the planned {result.plan.duration_s:g} s measured duration"


def _records_all_here(result: RunResult) -> bool:
    """Every worker sent its final record and no record of any worker is missing."""
    return all(w.finished and not w.missing_records for w in result.workers)


def _stream_lost(result: RunResult) -> str | None:
    if result.streams_lost == 0 or _records_all_here(result):
        return None
    missing = sum(w.missing_records for w in result.workers)
    return (
        "Redis lost the records stream during the run (restarted without persistence?); "
        f"records not yet collected were lost ({missing} missing from the workers' sequences)"
    )


def _stream_recovered(result: RunResult) -> str | None:
    if result.streams_lost == 0 or not _records_all_here(result):
        return None
    return (
        "Redis lost the records stream during the run (restarted?), but every worker's records arrived "
        "in full afterwards: nothing is missing"
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
    why = next((f"; {w.id}: {w.lost_reason}" for w in result.workers if w.lost and w.lost_reason), "")
    return (
        f"{len(lost)} of {len(result.workers)} worker(s) lost during the run ({named}{why}); "
        "their records up to the loss are kept, the load after it was not sent"
    )


def _workers_returned(result: RunResult) -> str | None:
    back = sorted(w.id for w in result.workers if w.returned and not w.lost)
    if not back:
        return None
    complete = all(w.finished and not w.missing_records for w in result.workers if w.id in back)
    counted = "every record of theirs was counted" if complete else "some of their records are missing"
    return (
        f"{len(back)} worker(s) went silent for a while and came back ({', '.join(back[:LOST_WORKERS_NAMED])}: "
        f"paused or starved of CPU?); {counted}; sends they were late for are judged by the schedule rules"
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
    Rule("interrupted", "invalid", _interrupted),
    Rule("nothing-measured", "invalid", _nothing_measured),
    Rule("nothing-succeeded", "invalid", _nothing_succeeded),
    Rule("target-failed", "invalid", _target_failed),
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
    Rule("stream-recovered", "note", _stream_recovered),
    Rule("workers-returned", "note", _workers_returned),
)
