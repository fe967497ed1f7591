"""`meshload trend --plan NAME`: the HTML trend report of a plan's recorded runs, with the runs that
are significantly worse than the ones before them marked (the rule is in `history.trend`)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import UsageError
from . import terminal
from .history_cmd import LabelOption, parse_labels
from .history_hook import StoreOption

if TYPE_CHECKING:
    from ..history.records import HistoryRecord
    from ..history.trend import TrendPoint

#: Labels that tell apart the series a plan's records may hold (a study's cells, `run --testbed F`).
SERIES_LABELS = ("function", "load_rps", "load_level")


def trend(
    plan: Annotated[
        str | None,
        typer.Option("--plan", envvar="MESHLOAD_TREND_PLAN", show_envvar=True, help="The plan whose runs to show."),
    ] = None,
    label: LabelOption = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            envvar="MESHLOAD_TREND_OUT",
            show_envvar=True,
            help="HTML file to write (default: trend-<plan>.html).",
        ),
    ] = None,
    window: Annotated[
        int,
        typer.Option(
            "--window", envvar="MESHLOAD_TREND_WINDOW", show_envvar=True, help="Earlier runs in each run's baseline."
        ),
    ] = 10,
    min_baseline: Annotated[
        int,
        typer.Option(
            "--min-baseline",
            envvar="MESHLOAD_TREND_MIN_BASELINE",
            show_envvar=True,
            help="Fewest earlier runs for a judgement.",
        ),
    ] = 5,
    false_alarm_pct: Annotated[
        float,
        typer.Option(
            "--false-alarm",
            envvar="MESHLOAD_TREND_FALSE_ALARM",
            show_envvar=True,
            help="Chance (%) that a run of pure noise is marked.",
        ),
    ] = 1.0,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            envvar="MESHLOAD_TREND_JSON",
            show_envvar=True,
            help="Also print each run's verdict as JSON on stdout.",
        ),
    ] = False,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            envvar="MESHLOAD_TREND_STRICT",
            show_envvar=True,
            help="Exit 1 when the latest run is marked worse.",
        ),
    ] = False,
    store: StoreOption = None,
) -> None:
    """Write a self-contained HTML trend of a plan's runs: p50, p99, errors and proxy CPU per run with
    each run's interval, and the runs significantly worse than the ones before them marked."""
    from ..history.store import open_store
    from ..history.trend import RegressionRule, assess_history
    from ..history.trend_report import render_trend

    try:
        rule = RegressionRule(window=window, min_baseline=min_baseline, false_alarm_rate=false_alarm_pct / 100.0)
    except ValueError as exc:
        raise UsageError(f"--window/--min-baseline/--false-alarm: {exc}") from exc
    labels = parse_labels(label or [])
    with open_store(store) as opened:
        if plan is None:
            known = opened.plan_names()
            hint = f"plans recorded: {', '.join(known[:10])}" if known else "the store holds no record yet"
            raise UsageError(f"give --plan NAME ({hint})")
        records = opened.records(plan=plan, labels=labels, kinds=["run", "cell"], oldest_first=True)
        if not records:
            known = opened.plan_names()
            hint = f"plans recorded: {', '.join(known[:10])}" if known else "the store holds no record yet"
            with_labels = " with those labels" if labels else ""
            raise UsageError(f"--plan {plan!r}: no run of this plan in {opened.display}{with_labels} ({hint})")
        display = opened.display
    _check_one_series(records, labels)
    points = assess_history(records, rule)
    path = out if out is not None else Path(f"trend-{plan.replace('/', '_')}.html")
    try:
        path.write_text(render_trend(points, plan=plan, rule=rule, store=display, labels=labels), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--out {path}: cannot write the report ({exc.strerror}); choose another file") from exc
    marked = [point for point in points if point.marked]
    for point in marked:
        terminal.warning(f"run {point.record.key} is significantly worse in: {', '.join(point.worse_metrics())}")
    if as_json:
        terminal.result(json.dumps([_verdict(point) for point in points], indent=1))
    terminal.info(f"{len(points)} runs, {len(marked)} marked worse")
    terminal.result(f"trend: {path.resolve()}")
    if strict and points[-1].marked:
        raise typer.Exit(1)


def _check_one_series(records: list[HistoryRecord], labels: dict[str, str]) -> None:
    """A trend compares like with like: refuse a mix of functions or load levels (a study's cells)."""
    for key in SERIES_LABELS:
        values = sorted({record.labels[key] for record in records if key in record.labels})
        if len(values) > 1 and key not in labels:
            raise UsageError(
                f"the plan's records hold several {key} values ({', '.join(values[:6])}); "
                f"pick one with --label {key}={values[0]}"
            )


def _verdict(point: TrendPoint) -> dict[str, object]:
    return {
        "run": point.record.key,
        "started_unix_ms": point.record.started_unix_ms,
        "valid": point.record.valid,
        "marked": point.marked,
        "worse": point.worse_metrics(),
        "note": point.note,
        "figures": {name: asdict(estimate) for name, estimate in point.record.figures.items()},
        "checks": {
            key: {**{name: _finite(value) for name, value in asdict(check).items()}, "worse": check.worse}
            for key, check in point.checks.items()
        },
    }


def _finite(value: object) -> object:
    """JSON has no infinity: a statistic of identical baseline runs becomes null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def register(app: typer.Typer) -> None:
    app.command("trend")(trend)
