"""A study's requests per replica: each arm's cells' replica counts summed, shown beside its latency in
index.html (table and chart) and kept through study.json; cells not supported in their topology are
marked and left out of the comparisons."""

from __future__ import annotations

from pathlib import Path

from meshload.history.records import records_from_study
from meshload.results.cell_summary import CellSummary
from meshload.results.outputs import write_study_outputs
from meshload.results.study_html import replica_rows
from meshload.results.study_json import load_study
from meshload.results.study_result import StudyResult
from meshload.scenarios.study_arms import FunctionSpec
from meshload.scenarios.study_plan import StudyPlan

from .conftest import MakeRun


def _plan() -> StudyPlan:
    return StudyPlan(
        name="balancing",
        load_levels=(100.0,),
        repetitions=2,
        duration_s=2.0,
        functions=(
            FunctionSpec(name="none"),
            FunctionSpec(name="grpc-l4", arm="l4", connections=1, baseline="none"),
            FunctionSpec(name="grpc-l7", arm="l7", connections=1, baseline="l4"),
        ),
    )


COUNTS = {
    "none": ({"r1": 200, "r2": 0, "r3": 0}, {"r1": 200, "r2": 0, "r3": 0}),
    "l4": ({"r1": 0, "r2": 200, "r3": 0}, {"r1": 199, "r2": 0, "r3": 1}),
    "l7": ({"r1": 67, "r2": 67, "r3": 66}, {"r1": 66, "r2": 67, "r3": 67}),
}


def _study(make_run: MakeRun) -> StudyResult:
    study = StudyResult.start(_plan())
    order = 0
    for repetition in (1, 2):
        for arm, counted in COUNTS.items():
            run = make_run(seed=order, median_ms=1.0 + order / 10)
            cell = CellSummary.from_run(run, function=arm, rate=100.0, repetition=repetition, order=order)
            cell.replicas = {"ratings-grpc": counted[repetition - 1]}
            study.cells.append(cell)
            order += 1
    return study


def test_replica_shares_are_summed_over_repetitions_beside_the_latency(make_run: MakeRun, tmp_path: Path) -> None:
    study = _study(make_run)
    rows = {row.function: row for row in replica_rows(study)}
    assert rows["l4"].counts == {"r1": 199, "r2": 200, "r3": 1}  # each block pinned, to another replica
    assert rows["l7"].shares == {"r1": 133 / 400, "r2": 134 / 400, "r3": 133 / 400}
    assert round(rows["none"].spread_pct, 1) == 66.7 and rows["l7"].spread_pct < 0.2
    assert 0 < rows["l7"].p50_ms < rows["l7"].p99_ms
    merged = study.merged_latency("l7", 100.0).values_at_percentiles([99.0])[99.0] / 1000.0
    assert rows["l7"].p99_ms == merged

    write_study_outputs(study, tmp_path)
    page = (tmp_path / "index.html").read_text()
    assert 'id="replicas"' in page and "r1 33.2%<br>r2 33.5%<br>r3 33.2%" in page
    assert "Share of ratings-grpc requests per replica at 100 rps" in page
    again = load_study(tmp_path)
    assert [cell.replicas for cell in again.cells] == [cell.replicas for cell in study.cells]


def test_not_supported_cells_are_marked_and_left_out(make_run: MakeRun, tmp_path: Path) -> None:
    study = _study(make_run)
    for cell in study.cells:
        if cell.function == "l7":
            cell.metrics, cell.histogram, cell.replicas = {}, "", {}
            cell.valid, cell.not_supported = False, "grpc-l7 does not apply here"
    assert {c.function for c in study.comparisons()} == {"l4"}
    assert study.not_supported() == {"l7": "grpc-l7 does not apply here"}
    assert "l7" not in {row.function for row in replica_rows(study)}
    write_study_outputs(study, tmp_path)
    page = (tmp_path / "index.html").read_text()
    assert "Not supported, so not run" in page and "l7 (grpc-l7 does not apply here)" in page
    assert "cells were invalid" not in page  # not supported is not invalid
    # the history records the cells that ran, and does not call the study invalid for the others
    study_record, *cell_records = records_from_study(study, tmp_path)
    assert len(cell_records) == 4 and {r.labels["function"] for r in cell_records} == {"none", "l4"}
    assert not any("invalid" in reason for reason in study_record.validity)
