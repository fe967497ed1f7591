"""The resolution of finished studies, side by side: the 95% interval half-width of Δp50 and Δp99 for
every function and load level, paired within blocks and unpaired (each arm's repetitions taken as
independent, as studies were compared before), and what each study cost in time.

    python bench/bench_study_halfwidths.py STUDY_DIR [STUDY_DIR ...] [--json]

Nothing is measured: it reads each folder's study.json (any format version: the paired comparison is
recomputed from the cells) and prints the before/after figures of issue 14, e.g. the old default
design (`bench/study-before.yaml`: few long blocks) against the new default study (many short ones).
An A/A study's calibration (false positives, coverage) is printed too.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from meshload.results.study_json import load_study
from meshload.results.study_result import StudyResult

METRICS = ("p50_ms", "p99_ms")


@dataclass
class HalfWidths:
    """One function at one load level: the half-widths of its intervals, in ms (None: no interval)."""

    function: str
    baseline: str
    rate: float
    paired: dict[str, float | None]
    unpaired: dict[str, float | None]


def half_widths(study: StudyResult) -> list[HalfWidths]:
    rows: dict[tuple[str, float], HalfWidths] = {}
    for c in study.comparisons():
        if c.metric in METRICS:
            row = rows.setdefault((c.function, c.rate), HalfWidths(c.function, c.baseline, c.rate, {}, {}))
            row.paired[c.metric] = c.half_width
    for u in study.unpaired_comparisons():
        if u.metric in METRICS and (u.function, u.rate) in rows and min(u.n_baseline, u.n_function) >= 2:
            rows[u.function, u.rate].unpaired[u.metric] = (u.high - u.low) / 2.0
    return list(rows.values())


def _ms(value: float | None) -> str:
    return "–" if value is None else f"±{value:.3f}"


@dataclass
class StudySummary:
    """What one study cost and how finely it resolved Δp50 and Δp99."""

    study: str
    name: str
    cells: int
    invalid_cells: int
    blocks_per_level: int
    cell_s: float
    duration_s: float
    rows: list[HalfWidths]
    widest: dict[str, dict[str, float | None]]  # paired/unpaired -> metric -> widest half-width
    calibration: dict[str, object] | None


def summary(folder: Path) -> StudySummary:
    study = load_study(folder)
    rows = half_widths(study)
    widest: dict[str, dict[str, float | None]] = {"paired": {}, "unpaired": {}}
    for metric in METRICS:
        for kind, values in (
            ("paired", [row.paired.get(metric) for row in rows]),
            ("unpaired", [row.unpaired.get(metric) for row in rows]),
        ):
            known = [v for v in values if v is not None]
            widest[kind][metric] = max(known) if known else None
    calibration = study.calibration()
    return StudySummary(
        study=str(folder),
        name=study.plan.name,
        cells=len(study.cells),
        invalid_cells=sum(not cell.valid for cell in study.cells),
        blocks_per_level=study.blocks_done,
        cell_s=study.plan.cell_s,
        duration_s=round((study.ended_unix_ms - study.started_unix_ms) / 1000.0, 1),
        rows=rows,
        widest=widest,
        calibration=None
        if calibration is None
        else {
            "false_positives": f"{calibration.false_positives.count}/{calibration.false_positives.total}",
            "coverage": f"{calibration.coverage.count}/{calibration.coverage.total}",
            "coverage_interval": [calibration.coverage.low, calibration.coverage.high],
            "sub_study_blocks": calibration.sub_study_blocks,
        },
    )


def _print(s: StudySummary) -> None:
    print(
        f"\n{s.name} ({s.study}): {s.cells} cells ({s.invalid_cells} invalid), {s.blocks_per_level} blocks per "
        f"load level, {s.cell_s:g} s of load per cell, {s.duration_s:g} s"
    )
    print(f"{'function':18} {'rps':>5}  {'Δp50 paired':>12} {'unpaired':>9}  {'Δp99 paired':>12} {'unpaired':>9}")
    for row in s.rows:
        print(
            f"{row.function:18} {row.rate:5g}  {_ms(row.paired.get('p50_ms')):>12} {_ms(row.unpaired.get('p50_ms')):>9}"
            f"  {_ms(row.paired.get('p99_ms')):>12} {_ms(row.unpaired.get('p99_ms')):>9}"
        )
    paired, unpaired = s.widest["paired"], s.widest["unpaired"]
    print(
        f"{'widest':18} {'':>5}  {_ms(paired['p50_ms']):>12} {_ms(unpaired['p50_ms']):>9}  "
        f"{_ms(paired['p99_ms']):>12} {_ms(unpaired['p99_ms']):>9}"
    )
    if s.calibration:
        c = s.calibration
        print(
            f"A/A: {c['false_positives']} comparisons called significant; coverage {c['coverage']} of "
            f"{c['sub_study_blocks']}-block sub-studies"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("studies", nargs="+", type=Path)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    summaries = [summary(folder) for folder in args.studies]
    if args.json:
        print(json.dumps([asdict(s) for s in summaries], indent=1))
        return
    for s in summaries:
        _print(s)


if __name__ == "__main__":
    main()
