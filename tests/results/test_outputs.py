"""A run's folder: the four files, and the run rebuilt from them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshload.errors import UsageError
from meshload.results.outputs import load_run_result, write_run_outputs
from meshload.results.run_result import RunResult


def test_written_folder_rebuilds_the_same_result(finished_result: RunResult, tmp_path: Path) -> None:
    paths = write_run_outputs(finished_result, tmp_path / "run")

    assert {name: path.name for name, path in paths.items()} == {
        "smp": "smp.json",
        "fortio": "fortio.json",
        "hlog": "histograms.hlog",
        "report": "report.html",
    }
    assert all(path.stat().st_size > 0 for path in paths.values())
    assert not list((tmp_path / "run").glob("*.part"))
    json.loads(paths["fortio"].read_text())

    back = load_run_result(tmp_path / "run")

    for kind in ("corrected", "uncorrected", "lag"):
        assert getattr(back, kind).encode() == getattr(finished_result, kind).encode(), kind
    for field in (
        "run_id",
        "plan",
        "started_unix_ms",
        "ended_unix_ms",
        "measured_s",
        "sent",
        "completed",
        "status_codes",
        "errors",
        "warmup_completed",
        "warmup_s",
        "workers",
        "timeseries",
        "valid",
        "validity",
        "degraded",
        "max_clock_offset_ms",
        "mesh",
        "labels",
        "environment",
    ):
        assert getattr(back, field) == getattr(finished_result, field), field
    assert len(back.records) == len(finished_result.records)
    assert sorted(r.latency_corrected for r in back.records) == sorted(
        r.latency_corrected for r in finished_result.records
    )
    # What was rebuilt renders again to the same documents.
    again = write_run_outputs(back, tmp_path / "again")
    assert json.loads(again["smp"].read_text()) == json.loads(paths["smp"].read_text())


def test_loading_a_wrong_folder_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"no smp\.json here; give the folder a run wrote with --out"):
        load_run_result(tmp_path)
    (tmp_path / "smp.json").write_text('{"config": {}}')
    with pytest.raises(UsageError) as caught:
        load_run_result(tmp_path)
    assert "not a meshload run document" in str(caught.value) and "\n" not in str(caught.value)


def test_unwritable_out_folder_is_a_usage_error(finished_result: RunResult, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UsageError, match="--out"):
        write_run_outputs(finished_result, blocker / "run")
