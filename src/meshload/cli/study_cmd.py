"""`meshload study`: what each traffic-control function costs, measured on the local testbed.

Runs every function of a study plan (the built-in default, `--quick`, or a file) at every load level,
in blocks (one repetition at one load level, every function once, shuffled); compares each function
with its baseline within blocks; writes each cell's run folder, `study.json` and `index.html`, and
prints a summary table (the paired change with its interval, or how large a change it rules out), the
study's resolution, its targets (`study_tables`), and where `index.html` is.

`--calibrate` runs the plan as an A/A study (one function as both arms) and reports the intervals'
false-positive rate and coverage on this machine; `--budget` with `--target-halfwidth` keeps adding
rounds of blocks while an interval is wider than its target and time remains.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .. import interrupts, terminal
from ..errors import UsageError
from .history_hook import HistoryOption, StoreOption, record_study
from .k8s_options import KubeconfigOption, ResultsTtlOption, results_ttl_s
from .options import DEFAULT_PROMETHEUS_STEP_S, PrometheusOption, PrometheusStepOption, option, prometheus_source
from .study_knee_lines import check_knee_asked, describe_knee, knee_arm_line, knee_overrides, knee_step_line
from .study_tables import print_study_summary

if TYPE_CHECKING:  # imported lazily at run time, so `meshload --help` stays fast
    from ..coordinator.mesh import MeshAdapter
    from ..coordinator.study_timing import StudyProgress
    from ..results.cell_summary import CellSummary
    from ..results.study_budget import RoundDecision
    from ..scenarios.study_plan import StudyCell, StudyPlan

DEFAULT_STUDIES_DIR = Path("studies")


def study(
    plan_file: Annotated[
        Path | None,
        typer.Argument(
            help="Study plan (YAML/JSON) or built-in study name; default: the built-in study-default.",
            show_default=False,
        ),
    ] = None,
    quick: Annotated[
        bool, option("--quick", env="STUDY_QUICK", help="Run the small built-in study (under 3 minutes).")
    ] = False,
    out: Annotated[
        Path | None,
        option("--out", "-o", env="STUDY_OUT", help="Output folder (default: a new folder under studies/)."),
    ] = None,
    repetitions: Annotated[
        int | None,
        option(
            "--repetitions",
            "-n",
            env="STUDY_REPETITIONS",
            help="Override the plan's repetitions (blocks per load level; with --budget, rounds before it may stop).",
        ),
    ] = None,
    duration: Annotated[
        str | None,
        option("--duration", "-d", env="STUDY_DURATION", help="Override the measured time per cell, e.g. 10s."),
    ] = None,
    warmup: Annotated[
        str | None, option("--warmup", env="STUDY_WARMUP", help="Override the warm-up per cell, e.g. 2s.")
    ] = None,
    load_levels: Annotated[
        str | None,
        option(
            "--load-levels",
            env="STUDY_LOAD_LEVELS",
            help="Override the load levels: rates in requests per second, e.g. 25,50,100.",
        ),
    ] = None,
    budget: Annotated[
        str | None,
        option(
            "--budget",
            env="STUDY_BUDGET",
            help="A time budget for the whole study, e.g. 15m: rounds of blocks are added while time remains "
            "(and, with --target-halfwidth, while an interval is wider than its target).",
        ),
    ] = None,
    target_halfwidth: Annotated[
        str | None,
        option(
            "--target-halfwidth",
            env="STUDY_TARGET_HALFWIDTH",
            help="Widest 95% interval half-width wanted per metric, e.g. p50=0.05ms,p99=0.5ms (needs a budget).",
        ),
    ] = None,
    calibrate: Annotated[
        bool,
        option(
            "--calibrate",
            env="STUDY_CALIBRATE",
            help="Run the plan as an A/A study (one function as both arms) and report the false-positive rate "
            "and the coverage of its intervals.",
        ),
    ] = False,
    calibrate_function: Annotated[
        str,
        option("--calibrate-function", env="STUDY_CALIBRATE_FUNCTION", help="The function of an A/A study's arms."),
    ] = "sidecar",
    pin_cpus: Annotated[
        bool,
        option(
            "--pin-cpus/--no-pin-cpus",
            env="STUDY_PIN_CPUS",
            help="Keep the generator and the local testbed on separate CPUs when there are enough (3 or more).",
        ),
    ] = True,
    redis_url: Annotated[
        str | None,
        option(
            "--redis",
            env="REDIS",
            help="Redis URL (shared with `meshload run` and workers); default: a private redis-server for the study.",
        ),
    ] = None,
    as_json: Annotated[
        bool,
        option(
            "--json", env="STUDY_JSON", help="At the end, print the comparisons as JSON on stdout instead of the table."
        ),
    ] = False,
    find_max: Annotated[
        bool,
        option(
            "--find-max",
            env="STUDY_FIND_MAX",
            help="After the latency cells, search each function's knee: the highest rate meeting --slo "
            "(and --errors); or find_max: in the plan.",
        ),
    ] = False,
    slo: Annotated[
        str | None,
        option("--slo", env="STUDY_SLO", help="With --find-max: the latency objective, e.g. 'p99<50ms'."),
    ] = None,
    errors: Annotated[
        str | None,
        option("--errors", env="STUDY_ERRORS", help="With --find-max: the error budget, e.g. '<0.1%'."),
    ] = None,
    results_ttl: ResultsTtlOption = None,
    kubeconfig: KubeconfigOption = None,
    prometheus: PrometheusOption = None,
    prometheus_step: PrometheusStepOption = DEFAULT_PROMETHEUS_STEP_S,
    store: StoreOption = None,
    history: HistoryOption = True,
) -> None:
    """Measure what each traffic-control function costs against its baseline, with 95% intervals."""
    from ..coordinator.cpu_pinning import plan_pinning
    from ..coordinator.study import StudyOptions, run_study
    from ..scenarios.durations import format_duration

    ttl_s = results_ttl_s(results_ttl)
    source = prometheus_source(prometheus, prometheus_step)
    plan = load_plan(
        plan_file,
        quick=quick,
        overrides={
            **_overrides(repetitions, duration, warmup, load_levels, budget, target_halfwidth),
            **knee_overrides(find_max, slo, errors),
        },
        calibrate=calibrate,
        calibrate_function=calibrate_function,
    )
    check_knee_asked(plan, find_max=find_max)
    estimate_s = _checked_estimate_s(plan, private_redis=redis_url is None)
    out_dir = _out_dir(out, plan.name)
    _announce(plan, estimate_s, out_dir)
    terminal.info(f"CPUs: {plan_pinning(plan.workers, enabled=pin_cpus).note}")

    def on_cell_start(cell: StudyCell, progress: StudyProgress) -> None:
        terminal.info(
            f"[{progress.done + 1}/{progress.total}] {cell.function.label} at {cell.rate:g} rps, "
            f"repetition {cell.repetition}"
        )

    def on_cell(summary: CellSummary, progress: StudyProgress) -> None:
        metrics = summary.metrics
        left = f"about {format_duration(round(progress.remaining_s))} left"
        if summary.not_supported:
            terminal.info(f"    not supported, skipped: {summary.not_supported}")
            return
        if metrics.get("p50_ms") is None:
            terminal.warning(f"cell failed: {'; '.join(summary.validity)}; {left}")
            return
        line = f"    p50 {metrics['p50_ms']:.2f} ms, p99 {metrics['p99_ms']:.2f} ms, {summary.actual_rps:.1f} rps"
        if metrics.get("error_rate_pct"):
            line += f", {metrics['error_rate_pct']:.1f}% errors"
        for service, counts in summary.replicas.items():
            total = sum(counts.values())
            shares = ", ".join(f"{name} {100 * count / total:.1f}%" for name, count in counts.items())
            terminal.info(f"    {service}: {shares}")
        terminal.info(f"{line}; {left}")
        if not summary.valid:
            terminal.warning(
                f"cell invalid ({'; '.join(summary.validity)}): its block is left out of the comparisons that "
                "have 2 or more blocks without one"
            )

    def on_round(decision: RoundDecision, progress: StudyProgress) -> None:
        verb = "another round" if decision.add else "stop"
        terminal.info(f"after {decision.round} blocks per load level: {verb} ({decision.reason})")

    options = StudyOptions(
        out_dir=out_dir,
        redis_url=redis_url,
        on_cell=on_cell,
        on_cell_start=on_cell_start,
        on_round=on_round,
        on_knee_arm=knee_arm_line(plan),
        on_knee_step=knee_step_line(plan),
        pin_cpus=pin_cpus,
        results_ttl_s=ttl_s,
        prometheus=source,
        mesh=_cluster_mesh(plan, kubeconfig),
    )
    try:
        result = run_study(plan, options)
    except KeyboardInterrupt as exc:
        terminal.error(_interrupted_line(str(exc) or "SIGINT", out_dir))
        raise typer.Exit(getattr(exc, "exit_code", 130)) from None
    elapsed_s = (result.ended_unix_ms - result.started_unix_ms) / 1000.0
    terminal.info(
        f"study finished in {format_duration(round(elapsed_s))} (estimated {format_duration(round(estimate_s))})"
    )
    index_path = (out_dir / "index.html").resolve()
    record_study(result, out_dir, store=store, enabled=history)
    if as_json:
        from ..results.study_json import study_document

        document = study_document(result)
        terminal.result(
            json.dumps(
                {
                    "index_html": str(index_path),
                    "comparisons": document["comparisons"],
                    "resolution": document["resolution"],
                    "targets": document["targets"],
                    "calibration": document["calibration"],
                },
                indent=1,
            )
        )
        terminal.info(f"index.html: {index_path}")
        return
    print_study_summary(result)
    terminal.result(f"index.html: {index_path}")


def _checked_estimate_s(plan: StudyPlan, *, private_redis: bool) -> float:
    """The study's estimated duration, once its budget is known to hold at least one round."""
    from ..coordinator.study_timing import check_budget, estimated_duration_s

    check_budget(plan, private_redis=private_redis)
    return estimated_duration_s(plan, private_redis=private_redis)


def _out_dir(out: Path | None, plan_name: str) -> Path:
    """The study's folder (given, or a new one under studies/), checked before the testbed or any
    worker starts: a folder the results cannot go to is one line now, not a lost study later."""
    from ..results.out_folder import check_out_dir

    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    return check_out_dir(out if out is not None else DEFAULT_STUDIES_DIR / f"{plan_name}-{stamp}")


def _interrupted_line(signal_name: str, out_dir: Path) -> str:
    """What an interrupted study left: the cells it finished, or plainly nothing."""
    from ..results.outputs import STUDY_FILE

    study_file = out_dir / STUDY_FILE
    try:
        cells = len(json.loads(study_file.read_text(encoding="utf-8")).get("cells", []))
    except (OSError, ValueError):
        cells = 0
    if not cells:
        return f"study interrupted ({signal_name}) before any cell finished; no cell was written"
    return f"study interrupted ({signal_name}); the {cells} cell(s) that finished are in {study_file}"


def load_plan(
    plan_file: Path | None,
    *,
    quick: bool,
    overrides: dict[str | tuple[str, ...], object],
    calibrate: bool = False,
    calibrate_function: str = "sidecar",
) -> StudyPlan:
    """The study to run: the plan file or built-in study with the command line's overrides, as an
    A/A study with `calibrate`."""
    from ..results.study_budget import study_targets
    from ..scenarios.study_file import DEFAULT_STUDY, QUICK_STUDY, load_study_plan

    if quick and plan_file is not None:
        raise UsageError("give a study plan or --quick, not both (--quick is the built-in study-quick)")
    source = plan_file if plan_file is not None else Path(QUICK_STUDY if quick else DEFAULT_STUDY)
    plan = load_study_plan(source, overrides, check_targets=study_targets)
    if not calibrate:
        return plan
    if plan.calibrate:
        return plan  # already an A/A study
    from ..testbed import PROFILES

    if calibrate_function not in PROFILES:
        raise UsageError(
            f"--calibrate-function: {calibrate_function!r} is not a testbed function; use one of: {', '.join(PROFILES)}"
        )
    return plan.as_calibration(calibrate_function)


def _cluster_mesh(plan: StudyPlan, kubeconfig: str | None) -> MeshAdapter | None:
    """The plan's `target: {mesh, namespace, ingress}` as the mesh's adapter (None: the local testbed)."""
    from ..coordinator.mesh import KubernetesMesh
    from ..scenarios.study_plan import MeshTarget

    target = plan.target
    if not isinstance(target, MeshTarget):
        return None
    return KubernetesMesh(target.mesh, namespace=target.namespace, ingress_url=target.ingress, kubeconfig=kubeconfig)


def _overrides(
    repetitions: int | None,
    duration: str | None,
    warmup: str | None,
    load_levels: str | None,
    budget: str | None,
    target_halfwidth: str | None,
) -> dict[str | tuple[str, ...], object]:
    from ..results.halfwidth_targets import parse_halfwidth_targets

    overrides: dict[str | tuple[str, ...], object] = {}
    if repetitions is not None:
        overrides["repetitions"] = repetitions
    if duration is not None:
        overrides["duration"] = duration
    if warmup is not None:
        overrides["warmup"] = warmup
    if load_levels is not None:
        try:
            overrides["load_levels"] = [float(part) for part in load_levels.split(",") if part.strip()]
        except ValueError:
            raise UsageError(f"--load-levels: {load_levels!r} is not a list of rates; use e.g. 25,50,100") from None
    if budget is not None:
        overrides["budget"] = budget
    if target_halfwidth is not None:
        parse_halfwidth_targets(target_halfwidth)  # named after the option when it is wrong
        overrides["target_halfwidth"] = target_halfwidth
    return overrides


def _announce(plan: StudyPlan, estimate_s: float, out_dir: Path) -> None:
    """What the study will run and how long it will take, before it starts."""
    from ..coordinator.study_timing import budget_rounds, round_estimate_s
    from ..scenarios.durations import format_duration

    finish = time.strftime("%H:%M UTC", time.gmtime(time.time() + estimate_s))
    kind = "A/A study" if plan.calibrate else "study"
    arms = " and ".join(f.label for f in plan.functions) if plan.calibrate else f"{len(plan.functions)} functions"
    if plan.topologies:
        arms = f"{len(plan.functions) // len(plan.topologies)} functions x {len(plan.topologies)} topologies"
    if plan.budget_s is None:
        blocks = f"{plan.repetitions} repetitions = {len(plan.cells())} cells"
    else:
        blocks = (
            f"rounds of {plan.cells_per_round} cells for {format_duration(plan.budget_s)} "
            f"(about {budget_rounds(plan)} rounds fit"
            + (
                f"; it stops earlier once every target ({plan.target_halfwidth}) is reached"
                if plan.target_halfwidth
                else ""
            )
            + ")"
        )
    terminal.info(
        f"{kind} {plan.name}: {arms} x {len(plan.load_levels)} load levels "
        f"({', '.join(f'{r:g}' for r in plan.load_levels)} rps) x {blocks} "
        f"of {plan.warmup_s:g}s warm-up + {plan.duration_s:g}s measured"
    )
    if plan.find_max is not None:
        terminal.info(
            f"then each function's capacity: the highest rate meeting {describe_knee(plan)}, in steps of "
            f"{plan.find_max.step_s:g}s (not counted in the estimate)"
        )
    terminal.info(
        f"estimated duration {format_duration(round(estimate_s))} (until about {finish}; a round of blocks about "
        f"{format_duration(round(round_estimate_s(plan)))}); results in {out_dir}"
    )


def register(app: typer.Typer) -> None:
    # SIGINT and SIGTERM stop the study in order: the cells done so far are written (exit 130/143).
    app.command("study")(interrupts.stopping_in_order(study))
