"""`meshload run` recording itself, `meshload history` listing and `history import` recording folders,
as a user runs them: real processes, a real HTTP server, the store on disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from tests.support.http_servers import ServerHandle, start_server
from tests.support.synthetic_runs import START_UNIX_MS, make_plan, synthetic_run

from meshload.history.store import open_store
from meshload.results.cell_summary import CellSummary
from meshload.results.outputs import write_run_outputs, write_study_outputs
from meshload.results.study_result import StudyResult
from meshload.scenarios.study_file import QUICK_STUDY, load_study_plan

pytestmark = pytest.mark.timeout(120)

MESHLOAD = [sys.executable, "-c", "from meshload.cli import main; main()"]


def meshload(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MESHLOAD_")}
    environment.update(env or {})
    return subprocess.run(
        [*MESHLOAD, *args], cwd=cwd, env=environment, capture_output=True, text=True, check=False, timeout=90
    )


@pytest.fixture
def server() -> Iterator[ServerHandle]:
    handle = start_server("ok")
    yield handle
    handle.stop()


@pytest.mark.slow
def test_a_run_records_itself_and_import_of_its_folder_gives_the_same_record(
    server: ServerHandle, tmp_path: Path
) -> None:
    store = str(tmp_path / "history.db")
    run = ["run", server.url, "--rate", "40", "--duration", "1s", "--no-live", "--label", "commit=abc"]

    recorded = meshload(*run, "--out", str(tmp_path / "r1"), "--store", store, cwd=tmp_path)
    assert recorded.returncode == 0, recorded.stderr
    assert f"recorded in the history store {store}" in recorded.stderr
    skipped = meshload(
        *run, "--out", str(tmp_path / "r2"), cwd=tmp_path, env={"MESHLOAD_STORE": store, "MESHLOAD_HISTORY": "false"}
    )
    assert skipped.returncode == 0 and "recorded in the history store" not in skipped.stderr
    unwritable = tmp_path / "a-file"
    unwritable.write_text("")
    failed = meshload(*run, "--out", str(tmp_path / "r3"), "--store", str(unwritable / "h.db"), cwd=tmp_path)
    assert failed.returncode == 0, failed.stderr  # the run itself went fine; its files are the record
    assert f"record them later with `meshload history import {tmp_path / 'r3'}`" in failed.stderr
    assert (tmp_path / "r3" / "smp.json").is_file()

    listed = meshload("history", "--json", "--store", store, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    (entry,) = json.loads(listed.stdout)
    smp = json.loads((tmp_path / "r1" / "smp.json").read_text())["meshload"]
    assert entry["key"] == smp["run_id"] and entry["kind"] == "run" and entry["plan_name"] == "run"
    assert entry["labels"] == {"commit": "abc"}
    assert entry["requests"] == smp["requests"] == 40
    assert entry["location"] == str((tmp_path / "r1").resolve())
    p99 = entry["figures"]["p99_ms"]
    assert p99["value"] == pytest.approx(smp["percentiles_ms"]["99"])
    assert p99["low"] <= p99["value"] <= p99["high"]
    assert entry["environment"]["cpu_cores"] == os.cpu_count()

    other_store = str(tmp_path / "imported.db")
    imported = meshload(
        "history", "import", str(tmp_path / "r1"), str(tmp_path / "r3"), "--store", other_store, cwd=tmp_path
    )
    assert imported.returncode == 0, imported.stderr
    assert "2 record(s)" in imported.stderr
    with open_store(other_store) as again:
        by_key = {record.key: record for record in again.records()}
    assert by_key[entry["key"]].figures["p99_ms"].value == p99["value"]
    assert by_key[entry["key"]].figures["p99_ms"].low == p99["low"]

    table = meshload("history", "--store", store, "--label", "commit=abc", cwd=tmp_path)
    assert table.returncode == 0 and entry["key"][:12] in table.stdout and "commit=abc" in table.stdout
    none = meshload("history", "--store", store, "--label", "commit=zzz", cwd=tmp_path)
    assert none.returncode == 0 and none.stdout == "" and "no record matches" in none.stderr


def test_import_of_a_study_folder_records_the_study_and_its_cells(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    plan = load_study_plan(QUICK_STUDY)
    study = StudyResult(plan=plan, started_unix_ms=START_UNIX_MS, ended_unix_ms=START_UNIX_MS + 60_000)
    folder = tmp_path / "study"
    for order, (function, repetition) in enumerate([("sidecar", 1), ("mtls", 1), ("sidecar", 2), ("mtls", 2)]):
        result = synthetic_run(
            rng,
            run_id=f"cell-{order}",
            plan=make_plan(plan.name, function=function, load_rps="50", repetition=str(repetition)),
            seconds=4,
        )
        run_dir = f"runs/{order:03d}-{function}-50rps-r{repetition}"
        write_run_outputs(result, folder / run_dir)
        study.cells.append(
            CellSummary.from_run(
                result, function=function, rate=50.0, repetition=repetition, order=order, run_dir=run_dir
            )
        )
    write_study_outputs(study, folder, html=False)
    store = str(tmp_path / "h.db")

    done = meshload("history", "import", str(folder), "--store", store, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert f"recorded study with 4 cells study:{plan.name}:{START_UNIX_MS}" in done.stderr
    with open_store(store) as opened:
        (recorded_study,) = opened.records(kinds=["study"])
        cells = opened.records(parent_key=recorded_study.key, oldest_first=True)
        mtls = opened.records(kinds=["cell"], labels={"function": "mtls"})
    assert recorded_study.plan_name == plan.name and recorded_study.requests == 4 * 800
    assert recorded_study.location == str(folder.resolve()) and not recorded_study.valid  # 4 of its cells ran
    assert [cell.key for cell in cells] == ["cell-0", "cell-1", "cell-2", "cell-3"]
    assert all(cell.plan_name == plan.name and cell.figures["p99_ms"].low is not None for cell in cells)
    assert cells[1].location == str((folder / "runs/001-mtls-50rps-r1").resolve())
    assert [cell.key for cell in mtls] == ["cell-3", "cell-1"]

    listed = meshload("history", "--kind", "cell", "--json", "--store", store, "-n", "2", cwd=tmp_path)
    assert [entry["key"] for entry in json.loads(listed.stdout)] == ["cell-3", "cell-2"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["history", "--label", "nope"], "error: --label 'nope' is not key=value; write e.g. --label function=mtls"),
        (["history", "--kind", "runs"], "error: --kind: 'runs' is not one of run, study, cell, all"),
        (["history", "--limit", "0"], "error: --limit: 0 is not a count; use 1 or more"),
        (["history", "import", "."], "give folders `meshload run --out` or `meshload study --out` wrote"),
    ],
)
def test_bad_history_arguments_exit_2_with_one_line(args: list[str], expected: str, tmp_path: Path) -> None:
    done = meshload(*args, "--store", str(tmp_path / "h.db"), cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], done.stderr
