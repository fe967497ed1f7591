"""A study's `find_max:` (each function's knee): the plan option and `--find-max --slo` read and
checked (bad input one line, file and line, before anything starts), the knee's run plan, and the
capacity table's change against the baseline, kept in study.json and read back."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.cli_errors import one_error_line

from meshload.errors import PlanError
from meshload.results.study_capacity import CapacityRow
from meshload.results.study_json import load_study, study_document, write_study_json
from meshload.results.study_result import StudyResult
from meshload.scenarios.plan import OpenLoop
from meshload.scenarios.study_file import load_study_plan
from meshload.scenarios.study_plan import knee_plan

PLAN = """\
load_levels: [50, 80]
duration: 2s
warmup: 1s
functions: [none, sidecar, mtls]
find_max: {slo: "p99<50ms", errors: "<0.1%", precision: 0.1, step: 3s, start: 120, max: 900}
"""


def _plan_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_find_max_is_read_into_the_plan_and_gives_each_arm_a_constant_rate_search_plan(tmp_path: Path) -> None:
    plan = load_study_plan(_plan_file(tmp_path, PLAN))
    spec = plan.find_max
    assert spec is not None
    assert (spec.slo, spec.errors, spec.precision, spec.step_s, spec.start_rps, spec.max_rps) == (
        "p99<50ms",
        "<0.1%",
        0.1,
        3.0,
        120.0,
        900.0,
    )
    search = knee_plan(plan, plan.functions[2], "http://127.0.0.1:9")
    assert search.load == OpenLoop(rate=120.0, arrival="constant")
    assert (search.duration_s, search.warmup_s) == (3.0, 1.0)
    assert search.labels["function"] == "mtls" and search.labels["knee"] == "true"
    # Without start:, the search starts at the highest load level.
    default = load_study_plan(_plan_file(tmp_path, PLAN.replace(", start: 120", "")))
    assert knee_plan(default, default.functions[0], "http://127.0.0.1:9").load.rate == 80.0  # type: ignore[union-attr]
    # Without find_max:, no capacity is searched.
    assert load_study_plan(_plan_file(tmp_path, PLAN.rsplit("find_max", 1)[0])).find_max is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ('slo: "p99<50ms"', "5: find_max.slo: 'p99>50ms' is not a latency objective; use e.g. 'p99<50ms'"),
        ('errors: "<0.1%"', "5: find_max.errors: '0.1' is not an error budget; use e.g. '<0.1%'"),
        ("precision: 0.1", "5: find_max.precision:"),
    ],
)
def test_a_bad_find_max_is_one_plan_error_naming_its_line(tmp_path: Path, change: str, message: str) -> None:
    bad = {'slo: "p99<50ms"': 'slo: "p99>50ms"', 'errors: "<0.1%"': 'errors: "0.1"', "precision: 0.1": "precision: 2"}
    path = _plan_file(tmp_path, PLAN.replace(change, bad[change]))
    with pytest.raises(PlanError) as raised:
        load_study_plan(path)
    assert f"{path}:{message}" in str(raised.value)


def test_an_aa_study_measures_no_capacity(tmp_path: Path) -> None:
    path = _plan_file(
        tmp_path, PLAN.replace("[none, sidecar, mtls]", "[sidecar, {name: sidecar, arm: b}]") + "calibrate: true\n"
    )
    with pytest.raises(PlanError, match="find_max: an A/A study measures no capacity"):
        load_study_plan(path)


def test_find_max_on_the_command_line_is_checked_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "testbed"
    monkeypatch.setenv("MESHLOAD_TESTBED_DIR", str(state))
    out = tmp_path / "out"
    plan = _plan_file(tmp_path, PLAN.rsplit("find_max", 1)[0])
    base = ["study", str(plan), "--out", str(out)]
    assert "--find-max: give the objective to meet" in one_error_line([*base, "--find-max"], capsys)
    assert "add --find-max" in one_error_line([*base, "--slo", "p99<50ms"], capsys)
    line = one_error_line([*base, "--find-max", "--slo", "p99 under 50ms"], capsys)
    assert "find_max.slo: 'p99 under 50ms' is not a latency objective" in line and "command line" in line
    assert "find_max.errors: '1%' is not an error budget" in one_error_line(
        [*base, "--find-max", "--slo", "p99<50ms", "--errors", "1%"], capsys
    )
    # Nothing started, nothing written.
    assert not out.exists() and not state.exists()


def test_the_capacity_table_compares_each_knee_with_its_baseline_and_survives_study_json(tmp_path: Path) -> None:
    plan = load_study_plan(_plan_file(tmp_path, PLAN))
    study = StudyResult.start(plan)
    study.capacity = [
        CapacityRow("none", rate=2000.0, failing_rate=2100.0),
        CapacityRow("sidecar", rate=1600.0, failing_rate=1700.0, steps=[{"rate": 1600.0, "passed": True}]),
        CapacityRow("mtls", rate=1400.0, failing_rate=1500.0),
    ]
    lines = {line.function: line for line in study.capacity_lines()}
    assert lines["none"].change_pct is None and lines["none"].baseline is None
    assert lines["sidecar"].baseline == "none" and lines["sidecar"].change_pct == pytest.approx(-20.0)
    assert lines["mtls"].describe() == "mtls: 1,400 req/s [1,400, 1,500), -12.5% vs sidecar"
    document = study_document(study, unpaired=False)
    rows = document["capacity"]["rows"]  # type: ignore[index]
    assert [row["bracket"] for row in rows] == [[2000.0, 2100.0], [1600.0, 1700.0], [1400.0, 1500.0]]
    write_study_json(document, tmp_path)
    again = load_study(tmp_path)
    assert again.capacity == study.capacity
    assert again.capacity_lines() == study.capacity_lines()


def test_the_search_tries_its_bound_and_stops_there_when_it_passes() -> None:
    from tests.support.study_runs import study_run

    from meshload.coordinator.find_max import KneeSearch
    from meshload.scenarios.plan import Plan, Target
    from meshload.scenarios.slo import parse_slo

    tried: list[float] = []

    def run_step(plan: Plan, folder: Path | None) -> object:
        rate = plan.load.rate  # type: ignore[union-attr]
        tried.append(rate)
        return study_run(seed=len(tried), rate=rate, count=int(rate * 2))

    def search(start: float) -> tuple[float, float]:
        tried.clear()
        plan = Plan(targets=(Target(url="http://127.0.0.1:9/"),), load=OpenLoop(rate=start), duration_s=2.0)
        knee = KneeSearch(plan, parse_slo("p99<50ms"), run_step, max_rate=300.0).run()  # type: ignore[arg-type]
        return knee.bracket

    # Every rate passes: doubling stops at the bound, which is tried and is the answer.
    assert search(100.0) == (300.0, 0.0) and tried == [100.0, 200.0, 300.0]
    # A first rate above the bound starts at it.
    assert search(500.0) == (300.0, 0.0) and tried == [300.0]
