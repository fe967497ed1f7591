#!/usr/bin/env python3
"""The table that opens README.md's performance section, made from what the benchmarks measured
(`bench/results/*.json`, which each benchmark writes when run with `--save`): every target beside its
peer or limit, whether the figure meets it, and when, on which commit and by which command it was
measured. The prose below the table says how and why; the table cannot drift from the results.

    python scripts/performance_table.py           # print the table
    python scripts/performance_table.py --write   # put it into README.md between the markers
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from readme_block import main

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
README = REPO / "README.md"
START = "<!-- performance table: made by scripts/performance_table.py --write from bench/results -->"
END = "<!-- end of performance table -->"

#: Closed loop: meshload's CPU per request at most this many times wrk's.
CLOSED_LOOP_LIMIT = 1.10
#: Open loop: the rate one worker holds (lag p99 under 1 ms, the rate within 1 %).
OPEN_LOOP_RATE = 50_000
#: The coordinator's share of one core for the fleet of `AGGREGATION_RESULTS`, in percent.
COORDINATOR_LIMIT_PERCENT = 10.0
AGGREGATION_RESULTS = "aggregation-1000-workers"
#: A run's memory is flat when it grows by less than this (percent), once its windows are full.
FLAT_LIMIT_PERCENT = 5.0
#: Objects a run keeps per request: a record per interval is not per request (0.0034 at 50,000 rps).
KEPT_PER_REQUEST_LIMIT = 0.01
#: A cut shows in a run's schedule lag when the run's lag p99 or p99.9 exceeds what it is without the
#: sends planned just after the cuts by more than this factor plus `CUT_LAG_SLACK_US` (leaving 0.5 %
#: of the sends out moves a percentile a little even when they lag like the rest).
CUT_LAG_FACTOR = 1.05
CUT_LAG_SLACK_US = 2.0
#: The Locust plugin's cost over plain Locust, in percent.
LOCUST_PLUGIN_LIMIT_PERCENT = 10.0
#: The way of `bench_engine.py --only cuts` a high-rate worker runs (its histograms in the fold process).
FOLD_PROCESS_WAY = "histograms in the fold process"


@dataclass(frozen=True)
class Row:
    """One target of the table: what it asks, what was measured beside its peer or limit, and the verdict."""

    target: str
    measured: str
    verdict: str  # "met", "not met", or what part of it could be shown here
    results: dict[str, Any] | None  # the results document it was read from (None: not measured)


def load_results(directory: Path = RESULTS) -> dict[str, dict[str, Any]]:
    """Every results document in `directory`, by benchmark name."""
    return {path.stem: json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))}


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _closed_loop(figures: dict[str, Any]) -> tuple[str, str]:
    generators = figures["generators"]
    wrk = generators["wrk"]["us_per_request"]
    meshload = generators["meshload"]["us_per_request"]
    peers = ", ".join(
        f"{label} {generators[name]['us_per_request'] / wrk:.2f}×"
        for name, label in (("hey", "hey"), ("locust", "Locust FastHttpUser"))
        if name in generators
    )
    measured = f"{meshload:.1f} µs against wrk's {wrk:.1f} µs: **{meshload / wrk:.2f}× wrk** ({peers})"
    if "system_us_per_request" in generators["wrk"]:
        measured += "; in the kernel " + " and ".join(
            f"{name} {generators[name]['system_us_per_request']:.1f} µs" for name in ("meshload", "wrk")
        )
    return measured, _met(meshload / wrk <= CLOSED_LOOP_LIMIT)


def _open_loop(figures: dict[str, Any]) -> tuple[str, str]:
    highest = figures.get("highest_rate_held")
    measured = (
        f"{figures['sent_per_s']:,.0f} sent/s of {figures['rate_planned']:,.0f} planned, lag p99 "
        f"**{figures['lag_p99_ms']:.2f} ms**; busy {figures['busy_us_per_request']:.1f} µs per request"
        + (f"; highest rate held: {highest:,.0f} rps" if highest else "")
    )
    ok = figures["holds"] and figures["rate_planned"] >= OPEN_LOOP_RATE
    return measured, _met(ok)


def _memory_per_request(figures: dict[str, Any]) -> tuple[str, str]:
    kept = figures["objects_kept_per_request"]
    collections = figures["gc_collections"]
    measured = (
        f"{kept:.4f} objects kept per request at {figures['rate_planned']:,.0f} rps (a run twice as long); "
        f"garbage collections by generation {collections}"
    )
    return measured, _met(kept < KEPT_PER_REQUEST_LIMIT)


def _scale(figures: dict[str, Any]) -> tuple[str, str]:
    by_workers = figures["by_workers"]
    parts = [
        f"N={n}: rate {scaled['rate_of_linear']:.3f} of linear, "
        f"CPU per request {scaled['cost_per_request_of_one']:.2f}× N=1's "
        f"({scaled['rounds_held']} of {scaled['rounds']} rounds held the schedule)"
        for n, scaled in sorted(by_workers.items(), key=lambda item: int(item[0]))
    ]
    most = max((int(n) for n in by_workers), default=1)
    measured = f"{figures['rate_per_worker']:,.0f} rps per worker; " + "; ".join(parts)
    return measured, f"shown for N ≤ {most} only ({figures['cpus']} CPUs here)"


def _cuts(figures: dict[str, Any]) -> tuple[str, str]:
    rounds = figures["ways"][FOLD_PROCESS_WAY]

    def window(group: str, q: str) -> float:
        return statistics.median(r["lag_us"][group][q] for r in rounds)

    run = {key: statistics.median(r["run_lag_us"][key] for r in rounds) for key in rounds[0]["run_lag_us"]}
    measured = (
        f"at {figures['rate']:,.0f} rps, the run's lag p99 / p99.9 **{run['lag_run_p99_us']:.0f} / "
        f"{run['lag_run_p999_us']:.0f} µs**, without the sends after cuts {run['lag_run_without_cuts_p99_us']:.0f} / "
        f"{run['lag_run_without_cuts_p999_us']:.0f} µs; within 5 ms after a cut p90 / p99 "
        f"{window('near_cuts', 'p90'):.0f} / {window('near_cuts', 'p99'):.0f} µs, "
        f"the rest {window('elsewhere', 'p90'):.0f} / {window('elsewhere', 'p99'):.0f} µs "
        f"(median of {len(rounds)} rounds)"
    )
    ok = all(
        run[f"lag_run_{q}_us"] <= CUT_LAG_FACTOR * run[f"lag_run_without_cuts_{q}_us"] + CUT_LAG_SLACK_US
        for q in ("p99", "p999")
    )
    return measured, _met(ok)


def _coordinator(figures: dict[str, Any]) -> tuple[str, str]:
    steps = figures.get("steps_core_percent") or {}
    biggest = sorted(steps.items(), key=lambda item: -item[1])[:3]
    measured = (
        f"**{figures['core_percent']:.1f} % of a core**, {figures['records_merged']:,.0f} of "
        f"{figures['records_expected']:,.0f} records merged, kept up: {'yes' if figures['kept_up'] else 'no'}"
        + ("; the most: " + ", ".join(f"{step} {share:.2f} %" for step, share in biggest) if biggest else "")
    )
    ok = figures["kept_up"] and figures["core_percent"] < COORDINATOR_LIMIT_PERCENT
    return measured, _met(ok)


def _soak(figures: dict[str, Any]) -> tuple[str, str]:
    settled = figures.get("coordinator_growth_from_minute_11_percent")
    coordinator = figures["coordinator_rss_mb"]
    worker = figures["worker_rss_mb"]
    measured = (
        f"{figures['minutes']:g} min at {figures['rate']:,.0f} rps: coordinator {coordinator[0]:.1f} → "
        f"{coordinator[1]:.1f} MB from minute 1 ({figures['coordinator_growth_percent']:+.1f} %"
        + (f", **{settled:+.1f} %** from minute 11, its 10-minute window full" if settled is not None else "")
        + f"), worker {worker[0]:.1f} → {worker[1]:.1f} MB (**{figures['worker_growth_percent']:+.1f} %**); "
        f"{figures['full_minutes_within_1_percent']} of {figures['full_minutes']} full minutes within 1 % of the rate"
        + ("" if figures.get("valid", True) else "; the run was invalid: " + "; ".join(figures["validity"]))
    )
    coordinator_growth = settled if settled is not None else figures["coordinator_growth_percent"]
    ok = max(coordinator_growth, figures["worker_growth_percent"]) < FLAT_LIMIT_PERCENT
    return measured, _met(ok)


def _locust(figures: dict[str, Any]) -> tuple[str, str]:
    per_request = figures["us_per_request"]
    plain, plugin = per_request["plain"], per_request["plugin"]
    extra = (plugin / plain - 1) * 100
    measured = f"Locust FastHttpUser {plain:.1f} µs per request, with the plugin {plugin:.1f} µs: **{extra:+.1f} %**"
    rounds = figures.get("rounds_us_per_request", {})
    paired = [
        (with_plugin / without - 1) * 100
        for without, with_plugin in zip(rounds.get("plain", ()), rounds.get("plugin", ()), strict=False)
        if without > 0 and with_plugin > 0  # a stalled round gives no figure (NaN, never > 0)
    ]
    if paired:
        measured += f" (by round, plugin over plain: {', '.join(f'{extra:+.0f}' for extra in paired)} %)"
    listener = figures.get("listener_us_per_event")
    if listener:
        share = listener / plain * 100
        measured += f"; its request listener alone {listener:.1f} µs per event ({share:.1f} % of plain Locust's)"
    run = per_request.get("meshload run --locustfile")
    if run:
        measured += f"; `meshload run --locustfile`, all its processes: {run / plain:.2f}× plain Locust"
    return measured, _met(extra < LOCUST_PLUGIN_LIMIT_PERCENT)


def _grpc(figures: dict[str, Any]) -> tuple[str, str]:
    per_call = figures["us_per_call"]
    grpc_us, h2_us = per_call["meshload gRPC (grpc.aio)"], per_call["meshload HTTP/2"]
    measured = (
        f"gRPC {grpc_us:.1f} µs per call, **{grpc_us / per_call['grpc.aio client']:.2f}×** a grpc.aio client "
        f"({grpc_us / per_call['h2load gRPC']:.1f}× h2load sending the same frames); "
        f"HTTP/2 {h2_us:.1f} µs per request, **{h2_us / per_call['h2load h2c']:.2f}×** h2load"
    )
    return measured, "peer shown"


def _instructions(figures: dict[str, Any]) -> tuple[str, str]:
    wrk = figures["wrk_instructions_per_request"]
    meshload = figures["meshload_instructions_per_request"]
    calls = figures["syscalls_per_request"]
    measured = (
        f"{meshload:,.0f} user-space instructions per request against wrk's {wrk:,.0f} ({meshload / wrk:.2f}×); "
        f"system calls per request {calls['meshload']:.2f} against wrk's {calls['wrk']:.2f}"
    )
    open_loop = figures.get("open_loop_instructions_per_request")
    if open_loop is not None:  # counted since the open loop's response path was compiled
        measured += (
            f"; the open loop at {figures['open_loop_rate']:,} rps, each send woken by its timer: "
            f"{open_loop:,.0f} instructions per request"
        )
    return measured, "peer shown"


@dataclass(frozen=True)
class Target:
    """A target of the table, the benchmark's results it is read from, and the command that measures it."""

    asks: str
    results: str
    describe: Callable[[dict[str, Any]], tuple[str, str]]
    command: str


TARGETS = [
    Target(
        f"Closed loop: CPU per request at most {CLOSED_LOOP_LIMIT:.1f}× wrk's, full recording",
        "engine-closed",
        _closed_loop,
        "python bench/bench_engine.py --only closed --save",
    ),
    Target(
        "Counted: instructions and system calls per request (closed loop; the open loop's instructions)",
        "engine-instructions",
        _instructions,
        "python bench/bench_engine.py --only instructions --save",
    ),
    Target(
        f"Open loop: one worker holds {OPEN_LOOP_RATE:,} rps, lag p99 under 1 ms, the rate within 1 %",
        "engine-open",
        _open_loop,
        "python bench/bench_engine.py --only open --save",
    ),
    Target("Open loop: N workers on N cores scale linearly", "scale", _scale, "python bench/bench_scale.py --save"),
    Target(
        "Worker: a cut does not show in the run's schedule lag (its p99 and p99.9 as without the sends after cuts)",
        "engine-cuts",
        _cuts,
        "python bench/bench_engine.py --only cuts --cuts-rounds 3 --save",
    ),
    Target(
        f"Coordinator: 1,000 workers × 1 record/s in under {COORDINATOR_LIMIT_PERCENT:.0f} % of a core",
        AGGREGATION_RESULTS,
        _coordinator,
        "python bench/bench_aggregation.py --workers 1000 --seconds 20 --steps --save",
    ),
    Target(
        "Memory: a run at 50,000 rps keeps nothing per request",
        "engine-open",
        _memory_per_request,
        "python bench/bench_engine.py --only open --save",
    ),
    Target(
        f"Memory: flat over a soak (under {FLAT_LIMIT_PERCENT:.0f} % growth)",
        "soak",
        _soak,
        "python bench/bench_soak.py --save",
    ),
    Target(
        f"Locust plugin: under {LOCUST_PLUGIN_LIMIT_PERCENT:.0f} % over plain Locust",
        "locust",
        _locust,
        "python bench/bench_locust.py --save",
    ),
    Target("gRPC and HTTP/2: CPU per call beside their peers", "grpc", _grpc, "python bench/bench_grpc.py --save"),
]


def rows(results: dict[str, dict[str, Any]]) -> list[Row]:
    """The table's rows, from the results by benchmark name; a missing benchmark says how to measure it."""
    made: list[Row] = []
    for target in TARGETS:
        document = results.get(target.results)
        if document is None:
            made.append(Row(target.asks, f"not measured: `{target.command}`", "not measured", None))
            continue
        measured, verdict = target.describe(document["figures"])
        made.append(Row(target.asks, measured, verdict, document))
    return made


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(results: dict[str, dict[str, Any]] | None = None) -> str:
    """The markdown table of `results` (by default, those in bench/results)."""
    lines = ["| target | measured | verdict | measured on, by |", "|---|---|---|---|"]
    for row in rows(load_results() if results is None else results):
        document = row.results
        source = (
            f"{document['measured_at'][:10]}, `{document['commit']}`, load {document['load_average_1m']:.2f}, "
            f"reference loop {'-'.join(f'{ms:.0f}' for ms in document['reference_loop_ms'] if ms)} ms: "
            f"`{document['command']}`"
            if document
            else ""
        )
        lines.append(f"| {_cell(row.target)} | {_cell(row.measured)} | {row.verdict} | {_cell(source)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], make=table, readme=README, start=START, end=END, usage=__doc__ or ""))
