"""The files of a run's folder (`--out DIR`) and of a study's, and rebuilding a run from them.

    smp.json          the SMP document with the `meshload` block (smp.py)
    fortio.json       the same run in Fortio's result shape (fortio.py)
    histograms.hlog   HdrHistogram interval log, one line per worker per interval (hlog.py)
    report.html       the self-contained report (report_html.py)

A study's folder holds `study.json` (study_json.py), `index.html` (study_html.py) and a run folder
per cell.

`smp.json` carries everything a `RunResult` holds except the per-interval histograms, which the
interval log carries; `load_run_result` joins the two, so `meshload report` and `compare` work from a
folder alone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import UsageError
from ..scenarios.plan import Plan
from .fortio import fortio_document
from .histogram import LatencyHistogram
from .hlog import records_from_log, write_interval_log
from .report_html import render_report
from .run_result import (
    ComponentUsage,
    MeshMinute,
    MeshUsage,
    MinutePoint,
    NameSummary,
    Reason,
    ReferenceFigures,
    RunResult,
    TimePoint,
    WorkerSummary,
)
from .smp import smp_document
from .study_html import INDEX_FILE, render_study_html
from .study_json import STUDY_FILE, study_document, write_study_json
from .study_result import StudyResult
from .trends import TrendLine

SMP_FILE = "smp.json"
FORTIO_FILE = "fortio.json"
HLOG_FILE = "histograms.hlog"
REPORT_FILE = "report.html"


def write_run_outputs(result: RunResult, out_dir: Path) -> dict[str, Path]:
    """Write the four files into `out_dir` (created if missing); returns {"smp": path, ...}."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {out_dir}: cannot create the folder ({exc.strerror}); choose another") from exc
    paths = {
        "smp": out_dir / SMP_FILE,
        "fortio": out_dir / FORTIO_FILE,
        "hlog": out_dir / HLOG_FILE,
        "report": out_dir / REPORT_FILE,
    }
    _write_text(paths["fortio"], json.dumps(fortio_document(result), indent=2, allow_nan=False) + "\n")
    partial_log = paths["hlog"].with_name(HLOG_FILE + ".part")
    if result.log_spool is not None:
        result.log_spool.write_log(partial_log)
    else:
        write_interval_log(result.records, partial_log)
    os.replace(partial_log, paths["hlog"])
    _write_text(paths["report"], render_report(result))
    # Last: a folder with smp.json in it is whole (a checkpoint's reader, or `--resume`, relies on it).
    _write_text(paths["smp"], json.dumps(smp_document(result), indent=2, allow_nan=False) + "\n")
    return paths


def _write_text(path: Path, text: str) -> None:
    # Written beside and renamed, so a reader never sees half a file.
    partial = path.with_name(path.name + ".part")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def load_run_result(out_dir: Path) -> RunResult:
    """Rebuild a run's result from the folder `write_run_outputs` wrote."""
    out_dir = Path(out_dir)
    smp_path = out_dir / SMP_FILE
    if not smp_path.is_file():
        raise UsageError(f"{out_dir}: no {SMP_FILE} here; give the folder a run wrote with --out")
    try:
        document = json.loads(smp_path.read_text(encoding="utf-8"))
        block = document["meshload"]
        plan = Plan.model_validate(block["plan"])
        result = RunResult(
            run_id=block["run_id"],
            plan=plan,
            started_unix_ms=int(block["started_unix_ms"]),
            ended_unix_ms=int(block["ended_unix_ms"]),
            measured_s=float(block["measured_s"]),
            corrected=LatencyHistogram.decode(block["histogram"]),
            uncorrected=LatencyHistogram.decode(block["uncorrected_histogram"]),
            lag=LatencyHistogram.decode(block["schedule_lag_histogram"]),
            sent=int(block["sent"]),
            completed=int(block["requests"]),
            status_codes={str(k): int(v) for k, v in block["status_codes"].items()},
            errors={str(k): int(v) for k, v in block["errors"].items()},
            bytes_received=int(block.get("bytes_received", 0)),
            late=int(block.get("late", 0)),
            missed=int(block.get("missed", 0)),
            clamped=int(block.get("clamped", 0)),
            warmup_completed=int(block["warmup"]["completed"]),
            warmup_s=float(block["warmup"]["duration_s"]),
            workers=[WorkerSummary(**worker) for worker in block["workers"]],
            timeseries=[TimePoint(**point) for point in block["timeseries"]],
            minutes=[MinutePoint(**point) for point in block.get("minutes", [])],
            mesh_minutes=[MeshMinute(**point) for point in block.get("mesh_minutes", [])],
            trends=[_trend(trend) for trend in block.get("trends", [])],
            valid=bool(block["valid"]),
            validity=[str(reason) for reason in block["validity"]],
            degraded=bool(block.get("degraded", False)),
            partial=bool(block.get("partial", False)),
            reasons=[Reason(**reason) for reason in block.get("reasons", [])],
            interrupted=str(block.get("interrupted_by", "")),
            connects=int(block.get("connections", {}).get("opened", 0)),
            connect_ms_total=float(block.get("connections", {}).get("connect_ms_total", 0.0)),
            connect_ms_max=float(block.get("connections", {}).get("connect_ms_max", 0.0)),
            max_clock_offset_ms=float(block.get("max_clock_offset_ms", 0.0)),
            mesh=_mesh_usage(block.get("mesh")),
            labels={str(k): str(v) for k, v in block.get("labels", {}).items()},
            records_dropped=int(block.get("records_dropped", 0)),
            environment=dict(block.get("environment", {})),
            by_name={str(name): _name_summary(part) for name, part in block.get("by_name", {}).items()},
            reference=ReferenceFigures(**block["reference"]) if block.get("reference") else None,
        )
    except (ValueError, KeyError, TypeError, ValidationError) as exc:
        # json.JSONDecodeError and a malformed histogram are ValueErrors too.
        raise UsageError(
            f"{smp_path}: not a meshload run document ({type(exc).__name__}: {exc}); "
            "give the folder a run wrote with --out"
        ) from exc
    hlog_path = out_dir / HLOG_FILE
    if hlog_path.is_file():
        try:
            result.records = records_from_log(hlog_path, result.run_id)
        except ValueError as exc:
            raise UsageError(f"{hlog_path}: malformed interval log ({exc})") from exc
    return result


def _trend(data: dict[str, Any]) -> TrendLine:
    return TrendLine(**{key: value for key, value in data.items() if key != "summary"})


def _name_summary(part: dict[str, Any]) -> NameSummary:
    return NameSummary(
        corrected=LatencyHistogram.decode(part["histogram"]),
        uncorrected=LatencyHistogram.decode(part["uncorrected_histogram"]),
        completed=int(part["requests"]),
        errors=int(part["errors"]),
        failures=int(part["failures"]),
    )


def _mesh_usage(data: dict[str, Any] | None) -> MeshUsage | None:
    if data is None:
        return None
    fields = dict(data)
    for name in ("sidecar", "ingress_gateway", "control_plane", "applications"):
        if name in fields:
            fields[name] = ComponentUsage(**fields[name])
    return MeshUsage(**fields)


def write_study_outputs(study: StudyResult, out_dir: Path, *, html: bool = True) -> dict[str, Path]:
    """Write `study.json` (and `index.html` unless `html` is False: the quick rewrite after every
    cell, which also leaves out the unpaired comparisons) into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    comparisons = study.comparisons()
    document = study_document(study, comparisons, unpaired=html)
    written = {STUDY_FILE: write_study_json(document, out_dir)}
    if html:
        written[INDEX_FILE] = out_dir / INDEX_FILE
        _write_text(written[INDEX_FILE], render_study_html(study, document, comparisons))
    return written
