"""A study's JSON form, `study.json`: every cell and every comparison, with what it takes to read
them (the plan, the environment, how the intervals were computed, the study's resolution, its
targets and budget, and for an A/A study its calibration). `load_study` reads it back, so
`meshload report DIR` re-renders a study from its files."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path

from ..scenarios.study_plan import StudyPlan
from .aa_calibration import AACalibration
from .bootstrap import BOOTSTRAP_RESAMPLES, CONFIDENCE
from .cell_summary import METRICS, CellSummary
from .paired import PAIRED_METHOD, PairedComparison, paired_interval_note
from .study_budget import BudgetOutcome
from .study_capacity import CapacityRow
from .study_result import StudyResult

STUDY_FILE = "study.json"
STUDY_KIND = "meshload-study"
#: 2: paired comparisons, resolution, targets, budget, calibration (1: unpaired comparisons only).
STUDY_FORMAT_VERSION = 2
UNPAIRED_NOTE = (
    "The same cells with each arm's repetitions taken as independent (percentile bootstrap of the "
    "difference of means, as studies compared before pairing): shown to see what pairing gains; no "
    "verdict of the study uses them."
)


def study_document(
    study: StudyResult, comparisons: Sequence[PairedComparison] | None = None, *, unpaired: bool = True
) -> dict[str, object]:
    """The content of `study.json` (`comparisons` when already computed, else computed here);
    without `unpaired`, the unpaired comparisons (a bootstrap each) are left for the final write."""
    plan = study.plan
    comparisons = list(study.comparisons() if comparisons is None else comparisons)
    calibration = study.calibration()
    return {
        "kind": STUDY_KIND,
        "format_version": STUDY_FORMAT_VERSION,
        "name": plan.name,
        "started_unix_ms": study.started_unix_ms,
        "ended_unix_ms": study.ended_unix_ms,
        "duration_s": round(max(study.ended_unix_ms - study.started_unix_ms, 0) / 1000.0, 3),
        "estimated_duration_s": round(study.estimated_duration_s, 1),
        "complete": study.complete,
        "plan": plan.model_dump(mode="json"),
        "environment": study.environment,
        "functions": [
            {
                "name": f.arm_name,
                "function": f.name,
                "label": f.label,
                "params": f.params,
                "topology": f.topology,
                "connections": f.connections,
                "baseline": plan.baseline_of(f.arm_name),
            }
            for f in plan.functions
        ],
        "load_levels_rps": list(plan.load_levels),
        "repetitions": study.rounds,
        "blocks_done": study.blocks_done,
        "interval": {
            "method": PAIRED_METHOD,
            "confidence": CONFIDENCE,
            "note": paired_interval_note(study.blocks_done),
        },
        "metrics": [asdict(metric) for metric in METRICS],
        "comparisons": [comparison_entry(comparison) for comparison in comparisons],
        "resolution": [asdict(row) for row in study.resolution(comparisons)],
        "targets": [asdict(row) for row in study.targets(comparisons)],
        "budget": asdict(study.budget) if study.budget is not None else None,
        "calibration": calibration_entry(calibration) if calibration is not None else None,
        "capacity": _capacity(study),
        "unpaired_comparisons": _unpaired(study) if unpaired else None,
        "cells": [asdict(cell) for cell in study.cells],
    }


def _capacity(study: StudyResult) -> dict[str, object] | None:
    """Each arm's knee with its bracket and its change against its baseline's (None: not searched)."""
    spec = study.plan.find_max
    if spec is None:
        return None
    rows = {row.function: row for row in study.capacity}
    return {
        "slo": spec.slo,
        "errors": spec.errors,
        "rows": [
            {
                **asdict(rows[line.function]),
                "bracket": [line.rate, line.failing_rate],
                "baseline": line.baseline,
                "change_pct": line.change_pct,
                "text": line.describe(),
            }
            for line in study.capacity_lines()
        ],
    }


def _unpaired(study: StudyResult) -> dict[str, object]:
    """The arms compared as independent samples, for what pairing gains (see `UNPAIRED_NOTE`)."""
    plan = study.plan
    return {
        "note": UNPAIRED_NOTE,
        "confidence": CONFIDENCE,
        "resamples": BOOTSTRAP_RESAMPLES,
        "seed": plan.seed,
        "comparisons": [
            {
                "function": c.function,
                "baseline": c.baseline,
                "rate": c.rate,
                "metric": c.metric,
                "change": c.change,
                "low": c.low,
                "high": c.high,
                "significant": c.significant,
                "n_baseline": c.n_baseline,
                "n_function": c.n_function,
            }
            for c in study.unpaired_comparisons()
        ],
    }


def comparison_entry(comparison: PairedComparison) -> dict[str, object]:
    """One paired comparison as study.json (and `meshload study --json`) shows it."""
    return {
        **asdict(comparison),
        "half_width": comparison.half_width,
        "relative_change_pct": comparison.relative_change_pct,
    }


def calibration_entry(calibration: AACalibration) -> dict[str, object]:
    """An A/A study's calibration: rates with their exact intervals, and the sub-study coverage by
    metric and load level (the comparisons themselves are the study's own)."""

    def share(count: int, total: int, low: float, high: float) -> dict[str, object]:
        rate = count / total if total else None
        return {"count": count, "total": total, "rate": rate, "low": low, "high": high}

    fp, coverage = calibration.false_positives, calibration.coverage
    return {
        "arm_a": calibration.arm_a,
        "arm_b": calibration.arm_b,
        "confidence": calibration.confidence,
        "nominal_false_positive_rate": round(calibration.nominal_false_positive_rate, 6),
        "false_positives": share(fp.count, fp.total, fp.low, fp.high),
        "sub_study_blocks": calibration.sub_study_blocks,
        "coverage": share(coverage.count, coverage.total, coverage.low, coverage.high),
        "sub_study_intervals": calibration.sub_study_intervals,
        "by_metric": [asdict(item) for item in calibration.by_metric],
    }


def write_study_json(document: dict[str, object], out_dir: Path) -> Path:
    """Write `study.json`; a study interrupted mid-write keeps the previous complete file."""
    path = out_dir / STUDY_FILE
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(_finite(document), indent=1, allow_nan=False), encoding="utf-8")
    temporary.replace(path)
    return path


def _finite(value: object) -> object:
    """NaN and infinities (a rate of no events) as null: JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def load_study(out_dir: Path) -> StudyResult:
    """Rebuild a study from its `study.json` (ValueError when the folder holds no study)."""
    path = out_dir / STUDY_FILE if out_dir.is_dir() else out_dir
    document = json.loads(path.read_text(encoding="utf-8"))
    if document.get("kind") != STUDY_KIND:
        raise ValueError(f"{path} is not a meshload study file")
    budget = document.get("budget")
    return StudyResult(
        plan=StudyPlan.model_validate(document["plan"]),
        started_unix_ms=int(document["started_unix_ms"]),
        ended_unix_ms=int(document["ended_unix_ms"]),
        environment=dict(document.get("environment", {})),
        cells=[CellSummary(**cell) for cell in document["cells"]],
        rounds=int(document.get("repetitions", 0)),
        budget=BudgetOutcome.from_dict(budget) if budget else None,
        estimated_duration_s=float(document.get("estimated_duration_s", 0.0)),
        capacity=[_capacity_row(row) for row in (document.get("capacity") or {}).get("rows", [])],
    )


def _capacity_row(entry: dict[str, object]) -> CapacityRow:
    """A row of study.json's capacity table read back (the derived keys are computed again)."""
    names = {f.name for f in fields(CapacityRow)}
    return CapacityRow(**{key: value for key, value in entry.items() if key in names})  # type: ignore[arg-type]
