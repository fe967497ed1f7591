"""The study, report and compare commands' answers to bad input: one line, the right exit code,
nothing started and nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.cli_errors import one_error_line

from meshload.cli import main
from meshload.results.outputs import write_study_outputs


@pytest.fixture(autouse=True)
def private_testbed_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path / "testbed"
    monkeypatch.setenv("MESHLOAD_TESTBED_DIR", str(state))
    return state


def test_bad_study_input_is_one_line_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], private_testbed_dir: Path
) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text("load_levels: [10]\nduration: 3x\nfunctions: [none]\n")
    assert (
        one_error_line(["study", str(plan)], capsys)
        == f'error: {plan}:2: duration: "3x" is not a duration; use e.g. 30s, 5m, 1h'
    )
    assert "not both" in one_error_line(["study", str(plan), "--quick"], capsys)
    assert "--load-levels" in one_error_line(["study", "--quick", "--load-levels", "fast,slow"], capsys)
    assert "command line" in one_error_line(["study", "--quick", "--repetitions", "0"], capsys)

    out = tmp_path / "out"
    plan.write_text("load_levels: [10]\nduration: 3s\nfunctions: [none, sidecar, warp-drive]\n")
    message = one_error_line(["study", str(plan), "--out", str(out)], capsys)
    assert "'warp-drive' is not offered by testbed-haproxy" in message and "mtls" in message
    plan.write_text(
        "load_levels: [10]\nduration: 3s\nfunctions: [none, sidecar, {name: rate-limit, params: {rps: 5}}]\n"
    )
    message = one_error_line(["study", str(plan), "--out", str(out)], capsys)
    assert "rate-limit" in message and "'rps'" in message and "limit_rps" in message
    # Refused before the testbed or the output folder were touched.
    assert not out.exists() and not (private_testbed_dir / "state.json").exists()


def test_bad_budget_targets_and_calibration_are_one_line_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], private_testbed_dir: Path
) -> None:
    out = tmp_path / "out"
    quick = ["study", "--quick", "--out", str(out)]
    message = one_error_line([*quick, "--budget", "10m", "--target-halfwidth", "p50=0.05"], capsys)
    assert message.startswith("error: --target-halfwidth:") and "needs a unit" in message
    message = one_error_line([*quick, "--budget", "10m", "--target-halfwidth", "p50=1ms,p50=2ms"], capsys)
    assert "given twice" in message
    message = one_error_line([*quick, "--target-halfwidth", "p50=1ms"], capsys)
    assert "needs a time budget" in message and "command line" in message
    message = one_error_line([*quick, "--budget", "20s"], capsys)
    assert "shorter than one round of blocks" in message and "8 cells" in message
    message = one_error_line([*quick, "--budget", "later"], capsys)
    assert "budget" in message and "later" in message
    message = one_error_line([*quick, "--calibrate", "--calibrate-function", "warp-drive"], capsys)
    assert message.startswith("error: --calibrate-function:") and "sidecar" in message
    assert not out.exists() and not (private_testbed_dir / "state.json").exists()


def test_report_and_compare_refuse_folders_they_cannot_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], study_folder: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "neither a study folder" in one_error_line(["report", str(empty)], capsys)
    assert "neither a study folder" in one_error_line(["compare", str(study_folder), str(empty)], capsys)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "study.json").write_text("{}")
    assert "not a readable meshload study" in one_error_line(["report", str(tmp_path / "broken")], capsys)


def test_report_rerenders_a_study_and_prints_where_it_is(
    study_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (study_folder / "index.html").unlink()
    main(["report", str(study_folder)])
    printed = capsys.readouterr()
    assert printed.out.strip().splitlines()[-1] == f"index.html: {(study_folder / 'index.html').resolve()}"
    assert "sidecar" in printed.out and "interval excludes 0" in printed.err
    # The paired change and its interval, and the study's resolution per load level.
    assert "change against the baseline" in printed.out and "resolution" in printed.out
    assert "2 blocks per comparison" in printed.err
    assert (study_folder / "index.html").is_file()


@pytest.fixture
def study_folder(tmp_path: Path, make_run) -> Path:
    from meshload.results.cell_summary import CellSummary
    from meshload.results.study_result import StudyResult
    from meshload.scenarios.study_arms import FunctionSpec
    from meshload.scenarios.study_plan import StudyPlan

    plan = StudyPlan(
        load_levels=(20.0,),
        repetitions=2,
        duration_s=2.0,
        functions=(FunctionSpec(name="none"), FunctionSpec(name="sidecar")),
    )
    study = StudyResult.start(plan)
    for cell in plan.cells():
        run = make_run(seed=cell.order, shift_ms=1.0 if cell.function.name == "sidecar" else 0.0, rate=cell.rate)
        study.cells.append(
            CellSummary.from_run(
                run, function=cell.function.name, rate=cell.rate, repetition=cell.repetition, order=cell.order
            )
        )
    folder = tmp_path / "study"
    write_study_outputs(study, folder)
    return folder
