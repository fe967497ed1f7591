"""What the history keeps of a run, a study and a study's cells: one `HistoryRecord` each.

A record holds the plan (its name and the plan itself), the labels, the environment, the headline
figures with their 95% intervals (`results.headline`), the validity and where the files are. The
files stay the source of truth: a record can always be rebuilt from a run or study folder
(`record_from_run_folder`, `records_from_study_folder`), which is what `meshload history import` does.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..results.aggregate import failed_requests
from ..results.headline import Estimate, headline_figures
from ..results.outputs import load_run_result
from ..results.run_result import RunResult
from ..results.study_json import load_study
from ..results.study_result import StudyResult

Kind = Literal["run", "study", "cell"]
KINDS: tuple[Kind, ...] = ("run", "study", "cell")

#: The figures a record carries, each as value, low and high (columns `<name>`, `<name>_low`,
#: `<name>_high` in the store), with the key each has in `results.headline` and the study's cells.
#: Units are in the names.
FIGURE_SOURCES: dict[str, str] = {
    "p50_ms": "p50_ms",
    "p90_ms": "p90_ms",
    "p99_ms": "p99_ms",
    "p99_9_ms": "p99.9_ms",  # a dot cannot stand in a column name
    "error_rate_pct": "error_rate_pct",
    "proxy_cpu_mcores": "proxy_cpu_mcores",
    "proxy_mem_mb": "proxy_mem_mb",
}
FIGURES: tuple[str, ...] = tuple(FIGURE_SOURCES)
#: Plan fields that do not change what is measured: left out of the plan digest, so the runs of a
#: plan stay one series however they are labelled or seeded.
_DIGEST_IGNORES = ("name", "labels", "seed")


@dataclass
class HistoryRecord:
    """One run, study or study cell as the history keeps it."""

    key: str  # unique: the run id, or "study:<name>:<start>" for a study
    kind: Kind
    plan_name: str
    plan: dict[str, object]
    started_unix_ms: int
    ended_unix_ms: int = 0
    parent_key: str | None = None  # a cell's study
    plan_digest: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    environment: dict[str, object] = field(default_factory=dict)
    duration_s: float = 0.0  # measured seconds (a study: wall-clock seconds)
    requests: int = 0  # completed responses
    errors: int = 0  # failed requests (transport errors and statuses >= 400)
    rate_rps: float | None = None
    figures: dict[str, Estimate] = field(default_factory=dict)  # keys from FIGURES
    valid: bool = True
    degraded: bool = False
    validity: list[str] = field(default_factory=list)
    location: str = ""  # the folder (or URL) of the files
    recorded_unix_ms: int = 0
    id: int | None = None  # the store's row id, once stored

    def figure(self, name: str) -> float | None:
        found = self.figures.get(name)
        return found.value if found is not None else None


def plan_digest(plan: dict[str, object]) -> str:
    """A short hash of what the plan measures (not its name, labels or seed)."""
    measured = {key: value for key, value in plan.items() if key not in _DIGEST_IGNORES}
    canonical = json.dumps(measured, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def record_from_run(
    result: RunResult,
    location: str,
    *,
    kind: Kind = "run",
    parent_key: str | None = None,
    plan_name: str | None = None,
) -> HistoryRecord:
    """The record of one finished run (or a study's cell, with `kind="cell"`)."""
    plan = result.plan.model_dump(mode="json")
    figures = headline_figures(result)
    stored = {name: figures[source] for name, source in FIGURE_SOURCES.items()}
    return HistoryRecord(
        key=result.run_id,
        kind=kind,
        parent_key=parent_key,
        plan_name=plan_name if plan_name is not None else result.plan.name,
        plan=plan,
        plan_digest=plan_digest(plan),
        started_unix_ms=result.started_unix_ms,
        ended_unix_ms=result.ended_unix_ms,
        labels={**result.plan.labels, **result.labels},
        environment=dict(result.environment),
        duration_s=result.measured_s,
        requests=result.completed,
        errors=failed_requests(result.status_codes, result.errors),
        rate_rps=result.actual_rps,
        figures=stored,
        valid=result.valid,
        degraded=result.degraded,
        validity=list(result.validity),
        location=location,
        recorded_unix_ms=now_ms(),
    )


def study_key(study: StudyResult) -> str:
    return f"study:{study.plan.name}:{study.started_unix_ms}"


def records_from_study(study: StudyResult, location: Path) -> list[HistoryRecord]:
    """The study's own record, then one per cell (read from the cell's run folder when it is there,
    so the cell gets the same intervals as a run; else from the study's summary of it)."""
    key = study_key(study)
    plan = study.plan.model_dump(mode="json")
    # A cell not supported in its topology did not run: it is neither invalid nor a record of its own.
    invalid = [cell for cell in study.cells if not cell.valid and not cell.not_supported]
    validity = [f"{len(invalid)} of {len(study.cells)} cells invalid"] if invalid else []
    if not study.complete:
        validity.append(f"incomplete: {len(study.cells)} of {study.planned_cells} cells ran")
    records = [
        HistoryRecord(
            key=key,
            kind="study",
            plan_name=study.plan.name,
            plan=plan,
            plan_digest=plan_digest(plan),
            started_unix_ms=study.started_unix_ms,
            ended_unix_ms=study.ended_unix_ms,
            environment=dict(study.environment),
            duration_s=max(study.ended_unix_ms - study.started_unix_ms, 0) / 1000.0,
            requests=sum(cell.completed for cell in study.cells),
            valid=not invalid and study.complete,
            validity=validity,
            location=str(location),
            recorded_unix_ms=now_ms(),
        )
    ]
    for cell in study.cells:
        if cell.not_supported:
            continue
        run_dir = location / cell.run_dir if cell.run_dir else None
        if run_dir is not None and (run_dir / "smp.json").is_file():
            result = load_run_result(run_dir)
            records.append(
                record_from_run(result, str(run_dir), kind="cell", parent_key=key, plan_name=study.plan.name)
            )
            continue
        # No run folder (moved or deleted): the study's summary of the cell, without intervals.
        metrics = cell.metrics
        records.append(
            HistoryRecord(
                key=cell.run_id,
                kind="cell",
                parent_key=key,
                plan_name=study.plan.name,
                plan=plan,
                plan_digest=plan_digest(plan),
                started_unix_ms=cell.started_unix_ms,
                labels={
                    "study": study.plan.name,
                    "function": cell.function,
                    "load_rps": f"{cell.rate:g}",
                    "repetition": str(cell.repetition),
                },
                requests=cell.completed,
                rate_rps=cell.actual_rps,
                figures={name: Estimate(metrics.get(source)) for name, source in FIGURE_SOURCES.items()},
                valid=cell.valid,
                validity=list(cell.validity),
                location=str(run_dir or location),
                recorded_unix_ms=now_ms(),
            )
        )
    return records


def record_from_run_folder(folder: Path) -> HistoryRecord:
    """The record of a run folder `meshload run --out` wrote."""
    return record_from_run(load_run_result(folder), str(folder.resolve()))


def records_from_study_folder(folder: Path) -> list[HistoryRecord]:
    """The records of a study folder `meshload study --out` wrote."""
    return records_from_study(load_study(folder), folder.resolve())


def now_ms() -> int:
    return int(time.time() * 1000)


def format_time(unix_ms: float) -> str:
    """A wall-clock instant as people read it in tables and logs: "2026-06-09 20:26:40 UTC"."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(unix_ms / 1000)) if unix_ms else "–"
