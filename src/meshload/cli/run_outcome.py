"""What `meshload run` (and `meshload resume`, `meshload report`) tells about a finished run: the summary
on stdout, the verdict's reasons as warnings, and the exit code that does not lie."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import TYPE_CHECKING

from .. import terminal

if TYPE_CHECKING:
    from ..results.run_result import RunResult


def tell_outcome(result: RunResult, out_dir: Path) -> None:
    """The summary on stdout; the verdict's reasons, and how the run ended, on stderr."""
    terminal.result(summary_table(result))
    warn_about(result)
    terminal.info(f"results in {out_dir}")
    if result.interrupted:
        terminal.warning(
            f"the run was INTERRUPTED ({result.interrupted}): what it measured until then is in {out_dir}, "
            "marked interrupted"
        )


def warn_about(result: RunResult) -> None:
    """The run's validity reasons and verdict, and any mesh memory that kept growing, as warnings."""
    for reason in result.validity:
        terminal.warning(reason)
    if not result.valid:
        terminal.warning("the run is INVALID: its figures cannot be trusted as a measurement (see above)")
    elif result.degraded:
        terminal.warning("the run is DEGRADED: it measured less load or fewer workers than planned")
    for trend in result.trends:
        if trend.flagged:
            terminal.warning(trend.describe())


def exit_code_for(result: RunResult, *, strict: bool) -> int:
    """128 + the signal's number for an interrupted run (130 SIGINT, 143 SIGTERM); 0 for a valid run;
    1 for an invalid or degraded one when `--strict` was given (else 0)."""
    if result.interrupted:
        return 128 + signal.Signals[result.interrupted].value
    return 1 if strict and (not result.valid or result.degraded) else 0


def summary_table(result: RunResult) -> str:
    """A short plain-text summary: totals, latency percentiles, per-worker lines."""
    percentiles = result.corrected.percentiles_ms()
    uncorrected = result.uncorrected.percentiles_ms()
    lines = [
        f"requests  {result.completed:,} completed, {result.sent:,} sent, {result.error_count:,} errors"
        + (f", {result.missed:,} never sent" if result.missed else ""),
        f"rate      {result.actual_rps:,.1f} req/s over {result.measured_s:.1f}s",
        "latency   " + "  ".join(f"p{key} {value:.2f}" for key, value in percentiles.items()) + "  ms (corrected)",
        "          " + "  ".join(f"p{key} {value:.2f}" for key, value in uncorrected.items()) + "  ms (uncorrected)",
    ]
    if result.connects:
        lines.append(
            f"connect   {result.connects:,} connections opened, set-up mean {result.connect_ms_mean:.2f} ms, "
            f"max {result.connect_ms_max:.2f} ms (the target's cost, apart from the schedule lag)"
        )
    if result.status_codes:
        lines.append("status    " + "  ".join(f"{code}: {count:,}" for code, count in result.status_codes.items()))
    if result.errors:
        lines.append("errors    " + "  ".join(f"{kind}: {count:,}" for kind, count in result.errors.items()))
    failures = sum(part.failures for part in result.by_name.values())
    if failures:
        lines.append(f"failures  {failures:,} (the locustfile's own verdicts: failed checks; per name in report.html)")
    for worker in result.workers:
        lost = "  LOST" if worker.lost else ""
        # Polling for near planned instants burns CPU without being load: say how much of it was that.
        spin = f" ({worker.spin_seconds:.2f}s polling for sends)" if worker.spin_seconds >= 0.01 else ""
        if worker.fold_cpu_seconds >= 0.01:
            spin += f", fold process cpu {worker.fold_cpu_seconds:.2f}s"
        lines.append(
            f"worker    {worker.id}: {worker.requests:,} requests, cpu {worker.cpu_seconds:.2f}s{spin}, "
            f"clock offset {worker.clock_offset_ms:+.2f} ms{lost}"
        )
    for service, counts in (result.mesh.replicas if result.mesh is not None else {}).items():
        total = sum(counts.values())
        shares = "  ".join(f"{name}: {count:,} ({100 * count / total:.1f}%)" for name, count in counts.items())
        lines.append(f"replicas  {service}: {shares}")
    lines.append(f"valid     {'yes' if result.valid else 'NO'}" + ("  (degraded)" if result.degraded else ""))
    return "\n".join(lines)
