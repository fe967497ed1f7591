"""A study's JSON form, `study.json`: every cell and every comparison, with what it takes to read
them (the plan, the environment, how the intervals were computed). `load_study` reads it back, so
`meshload report DIR` re-renders a study from its files."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from ..scenarios.study_plan import StudyPlan
from .compare import BOOTSTRAP_RESAMPLES, CONFIDENCE, METRICS, CellSummary, Comparison, interval_note
from .study_result import StudyResult

STUDY_FILE = "study.json"
STUDY_KIND = "meshload-study"
STUDY_FORMAT_VERSION = 1


def study_document(study: StudyResult, comparisons: Sequence[Comparison] | None = None) -> dict[str, object]:
    """The content of `study.json` (`comparisons` when already computed, else computed here)."""
    plan = study.plan
    comparisons = study.comparisons() if comparisons is None else comparisons
    return {
        "kind": STUDY_KIND,
        "format_version": STUDY_FORMAT_VERSION,
        "name": plan.name,
        "started_unix_ms": study.started_unix_ms,
        "ended_unix_ms": study.ended_unix_ms,
        "duration_s": round(max(study.ended_unix_ms - study.started_unix_ms, 0) / 1000.0, 3),
        "complete": study.complete,
        "plan": plan.model_dump(mode="json"),
        "environment": study.environment,
        "functions": [
            {"name": f.name, "label": f.label, "params": f.params, "baseline": plan.baseline_of(f.name)}
            for f in plan.functions
        ],
        "load_levels_rps": list(plan.load_levels),
        "repetitions": plan.repetitions,
        "interval": {
            "method": "percentile bootstrap of the difference of means, each arm resampled with replacement",
            "confidence": CONFIDENCE,
            "resamples": BOOTSTRAP_RESAMPLES,
            "seed": plan.seed,
            "note": interval_note(plan.repetitions),
        },
        "metrics": [asdict(metric) for metric in METRICS],
        "comparisons": [
            {**asdict(comparison), "relative_change_pct": comparison.relative_change_pct} for comparison in comparisons
        ],
        "cells": [asdict(cell) for cell in study.cells],
    }


def write_study_json(document: dict[str, object], out_dir: Path) -> Path:
    """Write `study.json`; a study interrupted mid-write keeps the previous complete file."""
    path = out_dir / STUDY_FILE
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(document, indent=1, allow_nan=False), encoding="utf-8")
    temporary.replace(path)
    return path


def load_study(out_dir: Path) -> StudyResult:
    """Rebuild a study from its `study.json` (ValueError when the folder holds no study)."""
    path = out_dir / STUDY_FILE if out_dir.is_dir() else out_dir
    document = json.loads(path.read_text(encoding="utf-8"))
    if document.get("kind") != STUDY_KIND:
        raise ValueError(f"{path} is not a meshload study file")
    return StudyResult(
        plan=StudyPlan.model_validate(document["plan"]),
        started_unix_ms=int(document["started_unix_ms"]),
        ended_unix_ms=int(document["ended_unix_ms"]),
        environment=dict(document.get("environment", {})),
        cells=[CellSummary(**cell) for cell in document["cells"]],
    )
