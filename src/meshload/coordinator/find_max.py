"""The knee: the highest open-loop rate at which the target still meets an SLO
(`meshload run --find-max --slo 'p99<50ms' [--errors '<0.1%']`).

Each step is a short run at one rate, carried out like any run (the same workers, the same Redis).
A step passes when its corrected latency percentile is under the SLO, its failed requests are under
the error budget, and the target answered what was planned (`KEPT_UP_FRACTION`): an open-loop
generator that could not send, or a service that stopped answering, is not a rate it sustains.

The search brackets the knee first (the rate doubles until a step fails, or halves until one
passes), then bisects the bracket until it is narrower than `precision` of its low end. A verdict
close to the line (the percentile within `CLOSE_MARGIN` of the SLO) is not trusted to one step: the
rate is run again, up to `repeats` times in all, and the majority decides. The answer is the highest
passing rate with the bracket [passing, failing] as its uncertainty: the knee lies between the two.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ..errors import RunError, UsageError
from ..results.aggregate import failed_requests
from ..results.run_result import RunResult
from ..scenarios.plan import OpenLoop, Plan
from ..scenarios.slo import Slo
from .run import RunOptions, execute_run, new_run_id

log = logging.getLogger(__name__)

#: A step whose percentile lies within this fraction of the SLO is run again.
CLOSE_MARGIN = 0.2
#: A step passes only when this fraction of the planned requests completed in time.
KEPT_UP_FRACTION = 0.95
#: The search gives up after this many steps (repeats included).
MAX_STEPS = 40
#: The file the search writes into the output folder.
FIND_MAX_FILE = "find_max.json"


@dataclass(frozen=True)
class Step:
    """One short run of the search."""

    rate: float
    passed: bool
    percentile_ms: float
    error_fraction: float
    completed_fraction: float
    run_id: str
    close: bool  # the verdict was near the line


@dataclass
class KneeResult:
    """The highest passing rate, with the bracket the knee lies in."""

    slo: Slo
    rate: float  # the highest rate that passed (0: none did)
    failing_rate: float  # the lowest rate above it that failed (0: none did)
    steps: list[Step] = field(default_factory=list)

    @property
    def bracket(self) -> tuple[float, float]:
        return (self.rate, self.failing_rate)

    def to_json(self) -> dict[str, object]:
        return {
            "slo": asdict(self.slo),
            "rate": self.rate,
            "bracket": list(self.bracket),
            "uncertainty": (self.failing_rate - self.rate) if self.failing_rate and self.rate else None,
            "steps": [asdict(step) for step in self.steps],
        }


def judge_step(result: RunResult, rate: float, slo: Slo) -> Step:
    """A step's verdict from its run's result."""
    percentile_ms = result.corrected.value_at_percentile(slo.percentile) / 1000.0 if result.completed else 0.0
    failed = failed_requests(result.status_codes, result.errors)
    planned = rate * result.plan.duration_s
    error_fraction = failed / result.completed if result.completed else 1.0
    completed_fraction = result.completed / planned if planned else 0.0
    passed = (
        result.completed > 0
        and percentile_ms < slo.latency_ms
        and error_fraction <= slo.max_error_fraction
        and completed_fraction >= KEPT_UP_FRACTION
    )
    close = abs(percentile_ms - slo.latency_ms) <= CLOSE_MARGIN * slo.latency_ms
    return Step(rate, passed, percentile_ms, error_fraction, completed_fraction, result.run_id, close)


def check_searchable(plan: Plan, precision: float) -> None:
    """UsageError (one line, before any load) unless the plan's rate can be searched."""
    if not isinstance(plan.load, OpenLoop) or plan.load.stages:
        raise UsageError("--find-max: searches open-loop rates; give --rate (the first rate tried), no stages")
    if not 0 < precision < 1:
        raise UsageError(f"--precision: {precision:g} is not a share; use e.g. 0.05 (the bracket within 5%)")


#: Runs one step: (plan at the step's rate, its output folder) -> its result.
StepRunner = Callable[[Plan, Path | None], RunResult]


class KneeSearch:
    """Bracket, then bisect; `run()` gives the `KneeResult`."""

    def __init__(
        self,
        plan: Plan,
        slo: Slo,
        run_step: StepRunner,
        *,
        out_dir: Path | None = None,
        precision: float = 0.05,
        repeats: int = 3,
        max_rate: float = 1e6,
        on_step: Callable[[Step], None] | None = None,
    ) -> None:
        check_searchable(plan, precision)
        self.plan = plan
        self.slo = slo
        self.run_step = run_step
        self.out_dir = out_dir
        self.precision = precision
        self.repeats = max(1, repeats)
        self.max_rate = max_rate
        self.on_step = on_step  # told of every step as it ends (progress on a terminal)
        self.result = KneeResult(slo=slo, rate=0.0, failing_rate=0.0)

    def run(self) -> KneeResult:
        rate = min(self.plan.load.rate if isinstance(self.plan.load, OpenLoop) else 1.0, self.max_rate)
        passing, failing = 0.0, 0.0
        # Bracket: double until a step fails, or halve until one passes; the bound itself is the
        # last rate tried upwards (passing there: no failing rate up to it).
        while (not passing or not failing) and len(self.result.steps) < MAX_STEPS:
            if self._passes(rate):
                passing = rate
                if not failing and rate >= self.max_rate:
                    break
                rate = min(rate * 2, self.max_rate) if not failing else (rate + failing) / 2
            else:
                failing = rate
                rate = rate / 2 if not passing else (passing + rate) / 2
                if rate < 0.5:
                    break
        # Bisect: the knee lies in [passing, failing).
        while passing and failing and failing - passing > self.precision * passing:
            if len(self.result.steps) >= MAX_STEPS:
                break
            middle = (passing + failing) / 2
            if self._passes(middle):
                passing = middle
            else:
                failing = middle
        self.result.rate, self.result.failing_rate = passing, failing
        self._write()
        return self.result

    def _passes(self, rate: float) -> bool:
        """The verdict at `rate`: one step, or the majority of up to `repeats` when it is close."""
        votes: list[bool] = []
        while len(votes) < self.repeats and len(self.result.steps) < MAX_STEPS:
            step = self._step(rate)
            votes.append(step.passed)
            if not step.close:
                break
            majority = (self.repeats // 2) + 1
            if votes.count(True) >= majority or votes.count(False) >= majority:
                break
        return votes.count(True) > votes.count(False)

    def _step(self, rate: float) -> Step:
        plan = self.plan.model_copy(update={"load": replace_rate(self.plan.load, rate)})
        index = len(self.result.steps) + 1
        folder = self.out_dir / f"step-{index:02d}-{rate:.0f}rps" if self.out_dir is not None else None
        try:
            result = self.run_step(plan, folder)
        except RunError as exc:
            # A step that cannot be carried out (its workers overwhelmed) fails it; nothing is skipped.
            log.warning("step at %.1f req/s failed to run: %s", rate, exc)
            step = Step(rate, False, 0.0, 1.0, 0.0, "", close=False)
        else:
            step = judge_step(result, rate, self.slo)
        self.result.steps.append(step)
        if self.on_step is not None:
            self.on_step(step)
        log.info(
            "step %d: %.1f req/s -> p%g %.2f ms, errors %.3f%%, completed %.1f%%: %s",
            index,
            rate,
            self.slo.percentile,
            step.percentile_ms,
            step.error_fraction * 100,
            step.completed_fraction * 100,
            "pass" if step.passed else "FAIL",
        )
        return step

    def _write(self) -> None:
        if self.out_dir is None:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.result.to_json(), indent=2, allow_nan=False) + "\n"
        partial = self.out_dir / (FIND_MAX_FILE + ".part")
        partial.write_text(text, encoding="utf-8")
        partial.replace(self.out_dir / FIND_MAX_FILE)


def replace_rate(load: object, rate: float) -> OpenLoop:
    assert isinstance(load, OpenLoop)
    return load.model_copy(update={"rate": rate})


def find_max(
    plan: Plan,
    options: RunOptions,
    slo: Slo,
    *,
    precision: float = 0.05,
    repeats: int = 3,
    on_step: Callable[[Step], None] | None = None,
) -> KneeResult:
    """Search the knee with real runs: each step is `execute_run` with `options` (its own run id and,
    under `options.out_dir`, its own folder)."""

    def run_step(step_plan: Plan, folder: Path | None) -> RunResult:
        step_options = replace(options, out_dir=folder, run_id=new_run_id(), live=False, checkpoint_s=0.0)
        return execute_run(step_plan, step_options)

    search = KneeSearch(
        plan, slo, run_step, out_dir=options.out_dir, precision=precision, repeats=repeats, on_step=on_step
    )
    return search.run()
