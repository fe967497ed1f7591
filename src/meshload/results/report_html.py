"""The run's `report.html`: one self-contained page (inline CSS, charts as inline SVG from `charts`),
so it opens anywhere, offline, and can be mailed or archived as a single file.

Sections: validity (first, in a box that cannot be missed), summary figures, the percentile spectrum
(corrected vs uncorrected on the nines axis), rate, latency and schedule lag over time (a stall shows
in the second it happened), per-worker table, the mesh's resource use, and the plan.
"""

from __future__ import annotations

import dataclasses
import json

from markupsafe import Markup

from ..scenarios.plan import ClosedLoop
from .aggregate import failed_requests
from .charts import (
    BLUE,
    GREY,
    PALETTE,
    RED,
    Series,
    latency_by_percentile,
    line_chart,
    schedule_lag_chart,
    spectrum_series,
)
from .histogram import REPORTED_PERCENTILES, LatencyHistogram, percentile_key
from .pages import render_page
from .run_result import RunResult
from .smp import rfc3339
from .trends import GROWTH_LIMIT, MIN_MINUTES, MIN_R2

REPORT_TEMPLATE = "report.html.j2"


def percentile_spectrum_chart(corrected: LatencyHistogram, uncorrected: LatencyHistogram) -> Markup:
    """Latency by percentile, corrected and uncorrected, as deep as the sample count supports."""
    series = [
        spectrum_series(name, colour, histogram)
        for name, colour, histogram in (("corrected", RED, corrected), ("uncorrected", BLUE, uncorrected))
        if histogram.total_count
    ]
    return latency_by_percentile(series, title="Latency by percentile")


def rate_chart(result: RunResult) -> Markup:
    xs = [p.offset_s for p in result.timeseries]
    return line_chart(
        [
            Series("completed / s", BLUE, xs, [p.rate for p in result.timeseries]),
            Series("sent / s", GREY, xs, [p.sent_rate for p in result.timeseries]),
        ],
        title="Rate over time",
        y_label="requests / s",
    )


def latency_chart(result: RunResult) -> Markup:
    xs = [p.offset_s for p in result.timeseries]
    return line_chart(
        [
            Series("p50", BLUE, xs, [p.p50_ms for p in result.timeseries]),
            Series("p99", RED, xs, [p.p99_ms for p in result.timeseries]),
        ],
        title="Corrected latency over time",
        y_label="latency (ms)",
    )


def minutes_chart(result: RunResult) -> Markup:
    """The whole run per minute (the per-second charts show its last minutes only on a long run)."""
    if len(result.minutes) < 2:
        return Markup("")
    xs = [p.offset_s / 60.0 for p in result.minutes]
    latency = line_chart(
        [
            Series("p50", BLUE, xs, [p.p50_ms for p in result.minutes]),
            Series("p99", RED, xs, [p.p99_ms for p in result.minutes]),
            Series("p99.9", GREY, xs, [p.p999_ms for p in result.minutes]),
        ],
        title="Corrected latency per minute (the whole run)",
        y_label="latency (ms)",
        x_label="minute",
    )
    rate = line_chart(
        [
            Series("completed / s", BLUE, xs, [p.rate for p in result.minutes]),
            Series("errors / minute", RED, xs, [float(p.errors) for p in result.minutes]),
        ],
        title="Rate and errors per minute (the whole run)",
        y_label="per second / per minute",
        x_label="minute",
    )
    return Markup(latency + rate)


def mesh_minutes_chart(result: RunResult) -> Markup:
    """The mesh's memory per minute by component, each with its least-squares trend line (dashed
    pieces of the same colour), and its CPU per minute."""
    if len(result.mesh_minutes) < 2:
        return Markup("")
    colours = {"sidecar": RED, "ingress_gateway": BLUE, "control_plane": GREY, "applications": PALETTE[1]}
    memory: list[Series] = []
    cpu: list[Series] = []
    for component, colour in colours.items():
        points = [m for m in result.mesh_minutes if component in m.mem_mb]
        if not points:
            continue
        xs = [m.offset_s / 60.0 for m in points]
        memory.append(Series(component, colour, xs, [m.mem_mb[component] for m in points]))
        cpu.append(Series(component, colour, xs, [m.cpu_mcores[component] for m in points]))
        trend = next((t for t in result.trends if t.series == f"{component} memory (MB)"), None)
        if trend is not None:
            memory.append(Series(f"{component} trend", colour, [xs[0], xs[-1]], [trend.start, trend.end]))
    return Markup(
        line_chart(memory, title="Mesh memory per minute, with trend lines", y_label="MB", x_label="minute")
        + line_chart(cpu, title="Mesh CPU per minute", y_label="millicores", x_label="minute")
    )


def load_model_text(result: RunResult) -> str:
    """One sentence on how the load was generated, and so what "corrected" means in this report."""
    plan = result.plan
    load = plan.load
    users = f"users of the locustfile {plan.locust.file}" if plan.locust is not None else ""
    if isinstance(load, ClosedLoop):
        think = f"{load.think_time_s:g} s think time" if load.think_time_s else ""
        if users:
            who = f"{load.concurrency} {users} ({think or 'their own wait times'}), each starting its next task"
            when = "when the previous one ended"
        else:
            who = f"{load.concurrency} clients{', ' + think if think else ''}, each sending"
            when = "when its previous request answered"
        return (
            f"Closed loop: {who} {when}. Latencies are measured from the actual send, so they are not corrected "
            "for coordinated omission (corrected and uncorrected are the same)."
        )
    stages = f", {len(load.stages)} stages" if load.stages else ""
    what, by = ("tasks", f", started by the {users} ({plan.max_connections} per worker)") if users else ("requests", "")
    return (
        f"Open loop: {load.rate:g} {what}/s, {load.arrival} arrivals{stages}, all workers together{by}. "
        f"Corrected latency is measured from each {what[:-1]}'s planned instant."
    )


def lag_chart(result: RunResult) -> Markup:
    """The generator's schedule lag in every second (p99 and the largest): where a stall happened."""
    xs = [p.offset_s for p in result.timeseries]
    return schedule_lag_chart(
        [
            Series("lag p99", BLUE, xs, [p.lag_p99_ms for p in result.timeseries]),
            Series("lag max", RED, xs, [p.lag_max_ms for p in result.timeseries]),
        ],
        title="Schedule lag per second (actual send - planned instant)",
        x_label="seconds after start (warm-up included)",
    )


def render_report(result: RunResult) -> str:
    """The whole page as a string."""
    return render_page(
        REPORT_TEMPLATE,
        result=result,
        started=rfc3339(result.started_unix_ms) if result.started_unix_ms else "",
        percentiles=[percentile_key(p) for p in REPORTED_PERCENTILES],
        corrected_ms=result.corrected.percentiles_ms(),
        uncorrected_ms=result.uncorrected.percentiles_ms(),
        lag_ms=result.lag.percentiles_ms(),
        mean_ms=result.corrected.mean_us() / 1000.0,
        max_ms=result.corrected.max_us / 1000.0,
        failed=failed_requests(result.status_codes, result.errors),
        spectrum_svg=percentile_spectrum_chart(result.corrected, result.uncorrected),
        rate_svg=rate_chart(result),
        latency_svg=latency_chart(result),
        minutes_svg=minutes_chart(result),
        mesh_minutes_svg=mesh_minutes_chart(result),
        trend_rule={"minutes": MIN_MINUTES, "growth": round(GROWTH_LIMIT * 100), "r2": MIN_R2},
        lag_svg=lag_chart(result),
        mesh=dataclasses.asdict(result.mesh) if result.mesh is not None else None,
        plan_json=json.dumps(result.plan.model_dump(mode="json"), indent=2),
        environment_json=json.dumps(result.environment, indent=2, default=str),
        load_model=load_model_text(result),
        by_name={
            name: {
                "summary": summary,
                "corrected_ms": summary.corrected.percentiles_ms(),
                "uncorrected_ms": summary.uncorrected.percentiles_ms(),
            }
            for name, summary in result.by_name.items()
        },
    )
