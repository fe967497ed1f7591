"""A small study, end to end, through the CLI: the real local testbed (BookInfo behind HAProxy),
a private redis-server, real worker processes, then `report` and `compare` on what it wrote.

none, sidecar and two functions, one load level, two repetitions, 1 s warm-up + 3 s per cell: about
a minute on 2 cores.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from tests.support.smp_proto import parse_smp_document

PLAN = """\
name: e2e
load_levels: [30]
repetitions: 2
warmup: 1s
duration: 3s
settle: 0.2s
seed: 5
functions:
  - none
  - sidecar
  - mtls
  - {name: rate-limit, params: {limit_rps: 1000}}
"""
FUNCTIONS = ("none", "sidecar", "mtls", "rate-limit")


def _meshload(*args: str, env: dict[str, str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "meshload", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout_s, check=False)


def _processes_using(text: Path | str) -> list[str]:
    """Processes whose command line mentions `text` (a folder, a worker id prefix)."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if str(text) in cmdline:
            found.append(f"{process.info['pid']}: {cmdline}")
    return found


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_small_study_runs_end_to_end_on_the_testbed(tmp_path: Path) -> None:
    plan_path = tmp_path / "e2e.yaml"
    plan_path.write_text(PLAN, encoding="utf-8")
    out = tmp_path / "out"
    state = tmp_path / "testbed"
    store = tmp_path / "history.db"
    env = {**os.environ, "MESHLOAD_TESTBED_DIR": str(state), "COLUMNS": "160", "MESHLOAD_STORE": str(store)}

    study = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "meshload",
            "study",
            str(plan_path),
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    stdout, stderr = study.communicate(timeout=200)
    finished = subprocess.CompletedProcess(study.args, study.returncode, stdout, stderr)
    assert finished.returncode == 0, finished.stderr[-3000:]
    # It says how long it will take before it starts, and ends by saying where index.html is.
    assert re.search(r"8 cells of 1s warm-up \+ 3s measured", finished.stderr)
    assert "estimated duration" in finished.stderr
    assert finished.stdout.strip().splitlines()[-1] == f"index.html: {(out / 'index.html').resolve()}"
    assert "sidecar" in finished.stdout and "rate-limit" in finished.stdout  # the summary table
    leftovers = _processes_using(state) + _processes_using(out) + _processes_using(f"--id study-{study.pid}-w")
    assert leftovers == [], "the study left processes behind"

    document = json.loads((out / "study.json").read_text())
    assert document["complete"] is True
    assert [f["name"] for f in document["functions"]] == list(FUNCTIONS)
    cells = document["cells"]
    assert sorted(c["function"] for c in cells) == sorted(FUNCTIONS * 2)
    # Interleaved: both repetitions of every function, repetition 1 entirely before repetition 2.
    assert [c["repetition"] for c in cells] == [1] * 4 + [2] * 4
    assert [c["order"] for c in cells] == list(range(8))
    for cell in cells:
        run_dir = out / cell["run_dir"]
        smp = json.loads((run_dir / "smp.json").read_text())
        parse_smp_document(smp)  # every part, strictly, as a protobuf-based SMP reader parses it
        assert smp["config"]["labels"]["function"] == cell["function"]
        assert smp["config"]["labels"]["repetition"] == str(cell["repetition"])
        assert (run_dir / "report.html").is_file() and (run_dir / "histograms.hlog").is_file()
        assert cell["completed"] > 0 and cell["metrics"]["p50_ms"] > 0
        # With sidecars in force the proxies' CPU was sampled; with none there are no proxies.
        cpu = cell["metrics"]["proxy_cpu_mcores_per_krps"]
        assert cpu == 0 if cell["function"] == "none" else cpu > 0

    # The study and each of its cells are in the history, each cell with its run's figures.
    from meshload.history.store import open_store

    with open_store(str(store)) as history:
        (recorded,) = history.records(kinds=["study"])
        recorded_cells = history.records(parent_key=recorded.key, oldest_first=True)
    assert recorded.plan_name == document["name"] and recorded.location == str(out.resolve())
    assert recorded.valid == all(cell["valid"] for cell in cells)  # a busy machine may invalidate a cell
    assert [cell.key for cell in recorded_cells] == [cell["run_id"] for cell in cells]
    for cell, summary in zip(recorded_cells, cells, strict=True):
        assert cell.labels["function"] == summary["function"] and cell.requests == summary["completed"]
        assert cell.figure("p50_ms") == pytest.approx(summary["metrics"]["p50_ms"])
        cpu = cell.figure("proxy_cpu_mcores")
        assert cpu is not None and (cpu == 0 if summary["function"] == "none" else cpu > 0)

    comparisons = document["comparisons"]
    compared = {(c["function"], c["baseline"]) for c in comparisons}
    assert compared == {("sidecar", "none"), ("mtls", "sidecar"), ("rate-limit", "sidecar")}
    for comparison in comparisons:
        assert comparison["low"] <= comparison["change"] <= comparison["high"], comparison
        assert comparison["n_baseline"] >= 1 and comparison["n_function"] >= 1
    by_key = {(c["function"], c["metric"]): c for c in comparisons}
    sidecar_p50 = by_key["sidecar", "p50_ms"]
    assert sidecar_p50["change"] > 0 and sidecar_p50["function_mean"] > sidecar_p50["baseline_mean"], (
        "two HAProxy hops per call should make the sidecar slower than no mesh at p50"
    )
    assert by_key["sidecar", "proxy_cpu_mcores_per_krps"]["change"] > 0
    environment = document["environment"]
    assert environment["cpu_cores"] >= 1 and environment["python"]
    assert "HAProxy" in environment["haproxy_version"]
    assert len(environment["load_average_before"]) == 3 and len(environment["load_average_after"]) == 3

    html = (out / "index.html").read_text()
    assert "<script" not in html and "<link" not in html and html.count("<svg") == 1 + 2 + 1

    # The saved folder re-renders, and a study compared with itself changes nothing.
    (out / "index.html").unlink()
    report = _meshload("report", str(out), "--json", env=env, timeout_s=60)
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["comparisons"] == comparisons
    assert (out / "index.html").is_file()
    same = _meshload("compare", str(out), str(out), "--json", env=env, timeout_s=60)
    assert same.returncode == 0, same.stderr
    assert {c["change"] for c in json.loads(same.stdout)["comparisons"]} == {0.0}
    runs = sorted((out / "runs").iterdir())
    two_runs = _meshload("compare", str(runs[0]), str(runs[1]), "--json", env=env, timeout_s=60)
    assert two_runs.returncode == 0, two_runs.stderr
    deltas = json.loads(two_runs.stdout)["percentiles_ms"]
    assert [d["percentile"] for d in deltas][:2] == ["50", "75"]
    assert all(d["change_ms"] == pytest.approx(d["b_ms"] - d["a_ms"]) for d in deltas)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_an_interrupted_study_keeps_its_cells_and_leaves_a_running_testbed_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from meshload.coordinator.mesh.local import LocalTestbedMesh
    from meshload.coordinator.study import StudyOptions, run_study
    from meshload.scenarios.study_plan import FunctionSpec, StudyPlan

    plan = StudyPlan(
        name="interrupted",
        load_levels=(20.0,),
        repetitions=1,
        warmup_s=0.5,
        duration_s=1.5,
        settle_s=0.0,
        functions=(FunctionSpec(name="none"), FunctionSpec(name="sidecar")),
        seed=2,
    )
    state, out = tmp_path / "testbed", tmp_path / "out"
    monkeypatch.setenv("MESHLOAD_TESTBED_DIR", str(state))
    users_testbed = LocalTestbedMesh(state)
    users_testbed.up("mtls", {"min_tls_version": "TLSv1.3"})
    seen = []

    def interrupt_after_first(summary, progress) -> None:
        seen.append(summary.function)
        raise KeyboardInterrupt

    try:
        with pytest.raises(KeyboardInterrupt):
            run_study(plan, StudyOptions(out_dir=out, on_cell=interrupt_after_first))
        # The study found the testbed up: it is still up, with the user's function back in force.
        status = users_testbed.status()
        assert status["running"] and status["function"] == "mtls"
        assert status["params"]["min_tls_version"] == "TLSv1.3"
    finally:
        users_testbed.down()
    # Its own Redis and workers are gone.
    assert _processes_using(out) + _processes_using(f"--id study-{os.getpid()}-w") == []
    document = json.loads((out / "study.json").read_text())
    assert document["complete"] is False and [c["function"] for c in document["cells"]] == seen
    assert document["environment"]["load_average_after"]
    assert "This study is incomplete: 1 of 2 cells ran." in (out / "index.html").read_text()
