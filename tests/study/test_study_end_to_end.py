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
import time
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
        # Paired within the 2 blocks (a block with an invalid cell is kept, flagged, for want of 2 valid).
        assert comparison["n_blocks"] == 2 and comparison["repetitions"] == [1, 2], comparison
        assert comparison["low"] <= comparison["change"] <= comparison["high"], comparison
    by_key = {(c["function"], c["metric"]): c for c in comparisons}
    sidecar_p50 = by_key["sidecar", "p50_ms"]
    assert sidecar_p50["change"] > 0 and sidecar_p50["function_mean"] > sidecar_p50["baseline_mean"], (
        "two HAProxy hops per call should make the sidecar slower than no mesh at p50"
    )
    assert by_key["sidecar", "proxy_cpu_mcores_per_krps"]["change"] > 0
    assert {r["metric"] for r in document["resolution"]} >= {"p50_ms", "p99_ms"}
    assert document["unpaired_comparisons"]["comparisons"]
    # Every cell has its schedule lag second by second, warm-up first; so does each run's report.
    for cell in cells:
        assert [s["warmup"] for s in cell["lag_seconds"]][:2] == [True, False] and len(cell["lag_seconds"]) >= 4
        assert 'id="lag"' in (out / cell["run_dir"] / "report.html").read_text()
    assert document["estimated_duration_s"] > 0
    environment = document["environment"]
    assert environment["cpu_cores"] >= 1 and environment["python"]
    assert "HAProxy" in environment["haproxy_version"]
    assert environment["cpu_pinning"]["pinned"] == (len(os.sched_getaffinity(0)) >= 3)
    assert len(environment["load_average_before"]) == 3 and len(environment["load_average_after"]) == 3

    html = (out / "index.html").read_text()
    # spectrum, overhead (p50, p99), proxy CPU, schedule lag, and reviews' requests per replica
    assert "<script" not in html and "<link" not in html and html.count("<svg") == 1 + 2 + 1 + 1 + 1
    assert 'id="replicas"' in html and "Share of reviews requests per replica" in html
    for cell in cells:  # each product page calls reviews once, and the callers take v1, v2, v3 in turn
        reviews = cell["replicas"]["reviews"]
        assert set(reviews) == {"reviews-v1", "reviews-v2", "reviews-v3"} and min(reviews.values()) > 0, cell

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
    from meshload.coordinator.cpu_pinning import CpuSplit, available_cpus, thread_affinities
    from meshload.coordinator.mesh.local import LocalTestbedMesh
    from meshload.coordinator.study import StudyOptions, run_study
    from meshload.scenarios.study_arms import FunctionSpec
    from meshload.scenarios.study_plan import StudyPlan

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
    # The generator on the last CPU, the mesh on the others (on 2 cores too, where a study would not
    # choose it by itself): what a machine with enough CPUs gets.
    cpus = available_cpus()
    split = CpuSplit(generator=(cpus[-1],), mesh=tuple(cpus[:-1]) or (cpus[0],))
    seen = []
    pinned: dict[str, list[set[int]]] = {}

    def interrupt_after_first(summary, progress) -> None:
        seen.append(summary.function)
        testbed_pids = [pid for pids in users_testbed.testbed.pids_by_kind().values() for pid in pids]
        pinned["mesh"] = [cpu_set for pid in testbed_pids for cpu_set in thread_affinities(pid).values()]
        workers = [
            p for p in psutil.process_iter(["cmdline"]) if f"study-{os.getpid()}-w" in " ".join(p.info["cmdline"] or [])
        ]
        pinned["generator"] = [cpu_set for w in workers for cpu_set in thread_affinities(w.pid).values()]
        pinned["coordinator"] = [os.sched_getaffinity(0)]
        raise KeyboardInterrupt

    try:
        with pytest.raises(KeyboardInterrupt):
            run_study(plan, StudyOptions(out_dir=out, on_cell=interrupt_after_first, cpu_split=split))
        # The study found the testbed up: it is still up, with the user's function back in force,
        # and its processes on every CPU again.
        status = users_testbed.status()
        assert status["running"] and status["function"] == "mtls"
        assert status["params"]["min_tls_version"] == "TLSv1.3"
        for pid in (p for pids in users_testbed.testbed.pids_by_kind().values() for p in pids):
            assert all(cpu_set == set(cpus) for cpu_set in thread_affinities(pid).values())
    finally:
        users_testbed.down()
    # While it ran, every thread of the testbed, the workers and the coordinator was on its side.
    assert pinned["mesh"] and all(cpu_set == set(split.mesh) for cpu_set in pinned["mesh"])
    assert pinned["generator"] and all(cpu_set == set(split.generator) for cpu_set in pinned["generator"])
    assert pinned["coordinator"] == [set(split.generator)] and os.sched_getaffinity(0) == set(cpus)
    # Its own Redis and workers are gone.
    assert _processes_using(out) + _processes_using(f"--id study-{os.getpid()}-w") == []
    document = json.loads((out / "study.json").read_text())
    assert document["complete"] is False and [c["function"] for c in document["cells"]] == seen
    assert document["environment"]["load_average_after"]
    assert document["environment"]["cpu_pinning"]["generator_cpus"] == list(split.generator)
    assert "This study is incomplete: 1 of 2 cells ran." in (out / "index.html").read_text()


AA_PLAN = """\
name: tiny
load_levels: [40]
warmup: 0.5s
duration: 1s
settle: 0.2s
seed: 3
functions: [none, sidecar, mtls]
"""


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_calibration_study_within_a_budget_reports_its_targets_and_its_calibration(tmp_path: Path) -> None:
    plan_path = tmp_path / "tiny.yaml"
    plan_path.write_text(AA_PLAN, encoding="utf-8")
    out, state = tmp_path / "out", tmp_path / "testbed"
    env = {**os.environ, "MESHLOAD_TESTBED_DIR": str(state), "COLUMNS": "160"}
    budget_s = 40.0
    started = time.monotonic()
    finished = _meshload(
        "study",
        str(plan_path),
        "--calibrate",
        "--budget",
        f"{budget_s:g}s",
        "--target-halfwidth",
        "p50=1us,cpu=100000mcores",
        "--out",
        str(out),
        "--no-history",
        env=env,
        timeout_s=150,
    )
    elapsed_s = time.monotonic() - started
    assert finished.returncode == 0, finished.stderr[-3000:]
    # Said before it started: an A/A study of sidecar against itself, in rounds, for the budget.
    assert "A/A study tiny-aa: sidecar-a and sidecar-b" in finished.stderr
    assert "rounds of 2 cells for 40s" in finished.stderr and "estimated duration" in finished.stderr
    pinned = len(os.sched_getaffinity(0)) >= 3
    assert ("CPUs: pinned: generator" if pinned else "CPUs: not pinned:") in finished.stderr
    assert elapsed_s < budget_s + 15  # the budget holds (plus the interpreter's start and the files)
    document = json.loads((out / "study.json").read_text())
    assert document["complete"] is True and document["plan"]["calibrate"] is True
    assert {c["function"] for c in document["cells"]} == {"sidecar-a", "sidecar-b"}
    rounds = document["blocks_done"]
    assert rounds >= 2 and len(document["cells"]) == 2 * rounds
    # Every round's decision is kept: more rounds while the budget allowed, then the stop and why.
    decisions = document["budget"]["decisions"]
    assert [d["round"] for d in decisions] == list(range(1, rounds + 1))
    assert all(d["add"] for d in decisions[:-1]) and not decisions[-1]["add"]
    assert "time budget spent" in document["budget"]["stop_reason"] == decisions[-1]["reason"]
    assert document["duration_s"] <= budget_s
    # p50 within ±1 µs is out of reach (and the report says how many blocks it would take);
    # CPU within ±100 cores is reached.
    p50, cpu = document["targets"]
    assert (p50["reached"], cpu["reached"]) == (False, True)
    assert p50["blocks_needed"] is None or p50["blocks_needed"] > rounds
    assert "NOT reached" in finished.stderr and "target cpu=100000mcores: reached" in finished.stderr
    # The A/A calibration: false positives over the comparisons that varied, coverage of sub-studies.
    calibration = document["calibration"]
    assert calibration["arm_a"] == "sidecar-a" and calibration["arm_b"] == "sidecar-b"
    assert 0 < calibration["false_positives"]["total"] <= 7
    assert calibration["coverage"]["total"] > 0 and calibration["sub_study_blocks"] == max(min(8, rounds // 2), 2)
    assert "A/A calibration (sidecar-a vs sidecar-b): false positives" in finished.stdout
    html = (out / "index.html").read_text()
    assert 'id="calibration"' in html and 'id="targets"' in html and 'id="resolution"' in html
    assert _processes_using(state) + _processes_using(out) == []
