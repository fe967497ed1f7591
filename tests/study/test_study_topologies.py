"""Topology as a study dimension, end to end through the CLI on the real local testbed: every function
runs in every listed topology (the testbed's proxies moved between cells), a function with no meaning
in a topology is marked "not supported" for those cells instead of failing the study, each arm is
compared with its baseline in the same topology, and the report groups by topology.

Three topologies, none/sidecar/mtls, one short block at a low rate: under a minute on 2 cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from meshload.coordinator.mesh.local import LocalTestbedMesh
from meshload.coordinator.study_mesh import check_functions
from meshload.errors import PlanError
from meshload.scenarios.study_file import load_study_plan

TOPOLOGIES = ("sidecar", "per-node", "ingress-only")
PLAN = """\
name: topologies
load_levels: [20]
repetitions: 1
warmup: 0.5s
duration: 1.5s
settle: 0.2s
topologies: [sidecar, per-node, ingress-only]
functions: [none, sidecar, mtls]
"""


def test_a_plan_with_topologies_has_an_arm_per_function_and_topology(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN, encoding="utf-8")
    plan = load_study_plan(path)
    arms = {f.arm_name: (f.name, f.topology, plan.baseline_of(f.arm_name)) for f in plan.functions}
    assert len(arms) == 9
    assert arms["mtls@per-node"] == ("mtls", "per-node", "sidecar@per-node")
    assert arms["sidecar@ingress-only"] == ("sidecar", "ingress-only", "none@ingress-only")
    assert arms["none@sidecar"] == ("none", "sidecar", None)
    cell = next(c for c in plan.cells() if c.function.arm_name == "mtls@per-node")
    labels = plan.cell_plan(cell, "http://127.0.0.1:9").labels
    assert (labels["function"], labels["topology"]) == ("mtls", "per-node")

    path.write_text(PLAN.replace("ingress-only]", "sidecar]"), encoding="utf-8")
    with pytest.raises(Exception, match=r"plan.yaml:7: .*'sidecar' is listed twice"):
        load_study_plan(path)


def test_topologies_the_testbed_does_not_have_are_refused_before_any_cell(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN.replace("per-node", "per-pod"), encoding="utf-8")
    plan = load_study_plan(path)
    with pytest.raises(PlanError, match=r"^topologies: 'per-pod' is not a testbed topology; use sidecar, per-node"):
        check_functions(plan, LocalTestbedMesh(tmp_path / "testbed"))
    assert not (tmp_path / "testbed" / "state.json").exists()  # nothing was started


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_study_across_topologies_runs_end_to_end(tmp_path: Path) -> None:
    plan_path = tmp_path / "topologies.yaml"
    plan_path.write_text(PLAN, encoding="utf-8")
    out = tmp_path / "out"
    env = {**os.environ, "MESHLOAD_TESTBED_DIR": str(tmp_path / "testbed"), "COLUMNS": "160"}
    finished = subprocess.run(
        [sys.executable, "-m", "meshload", "study", str(plan_path), "--out", str(out), "--no-history"],
        capture_output=True,
        text=True,
        env=env,
        timeout=280,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "mtls@ingress-only: not supported" in finished.stderr + finished.stdout

    study = json.loads((out / "study.json").read_text())
    cells = {cell["function"]: cell for cell in study["cells"]}
    assert len(cells) == 9
    skipped = cells.pop("mtls@ingress-only")
    assert skipped["not_supported"].startswith("mtls does not apply in the ingress-only topology")
    assert not skipped["run_dir"] and skipped["topology"] == "ingress-only"
    for arm, cell in cells.items():
        function, topology = arm.split("@")
        assert cell["topology"] == topology and not cell["not_supported"], arm
        assert cell["completed"] > 0, arm
        smp = json.loads((out / cell["run_dir"] / "smp.json").read_text())
        # the run itself says where the proxies stood, as the testbed had them
        assert smp["meshload"]["labels"]["topology"] == topology
        assert (smp["meshload"]["mesh"]["topology"], smp["meshload"]["mesh"]["function"]) == (topology, function)

    compared = {(c["function"], c["baseline"]) for c in study["comparisons"]}
    assert compared == {
        (f"{function}@{topology}", f"{baseline}@{topology}")
        for topology in TOPOLOGIES
        for function, baseline in (("sidecar", "none"), ("mtls", "sidecar"))
        if (function, topology) != ("mtls", "ingress-only")
    }
    page = (out / "index.html").read_text()
    assert all(f"topology {topology}</th>" in page for topology in TOPOLOGIES)
    assert "Not supported, so not run" in page and "(not supported)" in page
    # the testbed the study started is stopped with it
    assert not (tmp_path / "testbed" / "state.json").exists()
