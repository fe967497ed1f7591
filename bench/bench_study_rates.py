"""Where this machine still holds a study's schedule: the highest rate per function at which the
generator sends on time and the testbed's p50 stays low.

    python bench/bench_study_rates.py [--functions sidecar,mtls] [--rates 50,100,150,200,300,400,600]
                                      [--duration 3s] [--warmup 2s] [--tries 2] [--p50-limit-ms 3]
                                      [--max-late-pct 1] [--max-lag-p99-ms 1] [--no-pin-cpus] [--json]

Each function of the built-in default study (or those named) is put in force on a private local
testbed and run the way a study runs its cells (same workers, same CPU pinning, same warm-up), at
each rate in turn, lowest first, through the ingress. A rate **holds** when a run at it:

- passes the generator's self-check (`results.validity`: lag p99, missed sends, worker CPU, ...);
- sent at most `--max-late-pct` of its requests later than 1 ms (stricter than the self-check's 5%:
  a study compares functions on identical schedules, and late sends blur the comparison);
- had a schedule-lag p99 of at most `--max-lag-p99-ms`;
- kept the testbed's corrected p50 at or under `--p50-limit-ms` (above it, requests queue).

A rate gets `--tries` runs (one neighbour's burst can spoil any single run); the first that holds
counts. The climb stops at the first rate that does not hold. The answer per function is the highest
rate that held; the summary suggests load levels every function holds. Every run is bounded (warm-up
+ duration at the rate) and goes to the testbed on 127.0.0.1 only; the testbed and workers are
stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from meshload.coordinator.study import StudyOptions
from meshload.coordinator.study_session import StudySession
from meshload.errors import MeshloadError
from meshload.results.cell_summary import CellSummary
from meshload.scenarios.study_file import DEFAULT_STUDY, load_study_plan
from meshload.scenarios.study_plan import StudyCell, StudyPlan

DEFAULT_RATES = (50.0, 100.0, 150.0, 200.0, 300.0, 400.0, 600.0)


@dataclass
class Attempt:
    """One run at one rate for one function."""

    function: str
    rate: float
    attempt: int
    actual_rps: float
    p50_ms: float | None
    p99_ms: float | None
    lag_p99_ms: float | None
    late_pct: float | None
    valid: bool
    holds: bool
    why: str


def _lag_figures(cell: CellSummary, out_dir: Path) -> tuple[float | None, float | None]:
    """Schedule-lag p99 (ms) and the share of sends later than 1 ms (%) of a cell's run."""
    if not cell.run_dir:
        return None, None
    block = json.loads((out_dir / cell.run_dir / "smp.json").read_text())["meshload"]
    sent = max(int(block["sent"]), 1)
    return float(block["schedule_lag_ms"]["99"]), 100.0 * int(block.get("late", 0)) / sent


def _judge(cell: CellSummary, lag_p99_ms: float | None, late_pct: float | None, args: argparse.Namespace) -> str:
    """Why the run does not hold ("" when it does)."""
    p50 = cell.metrics.get("p50_ms")
    if not cell.valid:
        return "invalid: " + "; ".join(cell.validity)
    if p50 is None or lag_p99_ms is None or late_pct is None:
        return "no figures"
    if late_pct > args.max_late_pct:
        return f"{late_pct:.1f}% of sends more than 1 ms late"
    if lag_p99_ms > args.max_lag_p99_ms:
        return f"schedule-lag p99 {lag_p99_ms:.2f} ms"
    if p50 > args.p50_limit_ms:
        return f"p50 {p50:.2f} ms above {args.p50_limit_ms:g} ms"
    return ""


def _plan(args: argparse.Namespace) -> StudyPlan:
    plan = load_study_plan(
        DEFAULT_STUDY,
        {"load_levels": list(args.rates), "duration": args.duration, "warmup": args.warmup, "repetitions": 1},
    )
    return plan.model_copy(update={"budget_s": None, "target_halfwidth": ""})


def scan(args: argparse.Namespace, out_dir: Path) -> tuple[list[Attempt], dict[str, object]]:
    """Climb the rates for every function; every attempt, and the study's CPU pinning."""
    plan = _plan(args)
    functions = [f for f in plan.functions if not args.functions or f.name in args.functions]
    unknown = set(args.functions or ()) - {f.name for f in plan.functions}
    if unknown:
        raise SystemExit(f"error: not functions of the default study: {', '.join(sorted(unknown))}")
    attempts: list[Attempt] = []
    options = StudyOptions(out_dir=out_dir, pin_cpus=args.pin_cpus)
    with StudySession(plan, options) as session:
        order = 0
        for function in functions:
            for rate in plan.load_levels:
                held = False
                for attempt in range(1, args.tries + 1):
                    cell = session.run_cell(StudyCell(function, rate, attempt, order), out_dir)
                    order += 1
                    lag_p99_ms, late_pct = _lag_figures(cell, out_dir)
                    why = _judge(cell, lag_p99_ms, late_pct, args)
                    attempts.append(
                        Attempt(
                            function=function.arm_name,
                            rate=rate,
                            attempt=attempt,
                            actual_rps=round(cell.actual_rps, 1),
                            p50_ms=cell.metrics.get("p50_ms"),
                            p99_ms=cell.metrics.get("p99_ms"),
                            lag_p99_ms=lag_p99_ms,
                            late_pct=late_pct,
                            valid=cell.valid,
                            holds=not why,
                            why=why,
                        )
                    )
                    print(_line(attempts[-1]), file=sys.stderr, flush=True)
                    if not why:
                        held = True
                        break
                if not held:
                    break  # higher rates will not hold either
        pinning = session.pinning.describe()
    return attempts, pinning


def _figure(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _line(a: Attempt) -> str:
    verdict = "holds" if a.holds else f"does not hold ({a.why})"
    return (
        f"{a.function:18} {a.rate:6g} rps try {a.attempt}: {a.actual_rps:7.1f} rps, p50 {_figure(a.p50_ms)} ms, "
        f"p99 {_figure(a.p99_ms)} ms, lag p99 {_figure(a.lag_p99_ms, 3)} ms, late {_figure(a.late_pct, 1)}%: {verdict}"
    )


def highest_held(attempts: list[Attempt]) -> dict[str, float | None]:
    """The highest rate each function held (None: not even the lowest)."""
    best: dict[str, float | None] = {}
    for a in attempts:
        best.setdefault(a.function, None)
        if a.holds:
            best[a.function] = max(best[a.function] or 0.0, a.rate)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--functions", type=lambda text: [f for f in text.split(",") if f], default=None)
    parser.add_argument(
        "--rates", type=lambda text: sorted(float(r) for r in text.split(",") if r), default=list(DEFAULT_RATES)
    )
    parser.add_argument("--duration", default="3s", help="measured part of each run")
    parser.add_argument("--warmup", default="2s", help="warm-up of each run (as a study's cells)")
    parser.add_argument("--tries", type=int, default=2)
    parser.add_argument("--p50-limit-ms", type=float, default=3.0)
    parser.add_argument("--max-late-pct", type=float, default=1.0)
    parser.add_argument("--max-lag-p99-ms", type=float, default=1.0)
    parser.add_argument("--pin-cpus", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--out", type=Path, default=None, help="keep every run's folder here")
    parser.add_argument("--json", action="store_true", help="print every attempt and the answer as JSON")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="meshload-rates-") as scratch:
        # A testbed of its own: a user's running testbed is left alone.
        os.environ.setdefault("MESHLOAD_TESTBED_DIR", str(Path(scratch) / "testbed"))
        out_dir = args.out or Path(scratch) / "runs"
        try:
            attempts, pinning = scan(args, out_dir)
        except MeshloadError as exc:
            raise SystemExit(f"error: {exc}") from None

    best = highest_held(attempts)
    held = [rate for rate in best.values() if rate is not None]
    common = min(held) if held and len(held) == len(best) else None
    if args.json:
        document = {"attempts": [asdict(a) for a in attempts], "highest_held_rps": best, "cpu_pinning": pinning}
        print(json.dumps({**document, "every_function_holds_rps": common}, indent=1))
        return
    print(f"cpu pinning: {pinning['note']}")
    print(f"{'function':18} highest rate held")
    for function, rate in best.items():
        print(f"{function:18} {'none of the rates' if rate is None else f'{rate:g} rps'}")
    if common is not None:
        print(f"every function holds {common:g} rps: load levels up to {common:g} rps suit a study here")
    else:
        print("some function held none of the rates: try lower rates (--rates)")


if __name__ == "__main__":
    main()
