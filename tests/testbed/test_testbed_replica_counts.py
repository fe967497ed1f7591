"""Per-replica request counts in a run's results: what each replica answered over the measured window,
from the replicas' own counters, in smp.json, report.html and the console summary; and the gRPC
balancing they show: with one client connection grpc-l4 puts every call on one replica, grpc-l7
spreads them evenly."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from meshload.cli.run_outcome import summary_table
from meshload.coordinator.mesh.local import LocalTestbedMesh
from meshload.coordinator.run import RunOptions, execute_run
from meshload.results.run_result import RunResult
from meshload.scenarios.files import load_plan_file
from meshload.scenarios.plan import OpenLoop, Plan, Target
from meshload.testbed.topology import GRPC_SERVICE, SIDECAR, Ports, instances_of

RATE = 150  # calls per second: shares in percent within 2 s, little CPU on a shared machine
REPLICAS = [instance.name for instance in instances_of(GRPC_SERVICE)]


def _grpc_run(mesh: LocalTestbedMesh, function: str, connections: int, out_dir) -> RunResult:
    mesh.apply(function)
    overrides: dict[str | tuple[str, ...], object] = {"base_url": mesh.grpc_url, "load.rate": RATE}
    overrides |= {"duration": 2, "warmup": 0.5, "max_connections": connections}
    plan = load_plan_file("ratings-grpc", overrides)
    return execute_run(plan, RunOptions(workers=1, out_dir=out_dir, live=False, mesh=mesh))


def _shares(result: RunResult, service: str) -> dict[str, float]:
    assert result.mesh is not None
    counts = result.mesh.replicas[service]
    total = sum(counts.values())
    # The replicas counted over the sampler's window, which starts and ends within one collection
    # turn (200 ms) of the measured part: their total is the run's own count, give or take that.
    assert abs(total - result.completed) <= 0.25 * RATE + 0.05 * result.completed, (total, result.completed)
    return {name: count / total for name, count in counts.items()}


@pytest.mark.parametrize("topology", [SIDECAR], indirect=True, scope="module")
def test_one_connection_l4_pins_l7_spreads_counted_by_the_replicas(testbed, topology, tmp_path):
    mesh = LocalTestbedMesh(testbed.folder.root)

    pinned = _grpc_run(mesh, "grpc-l4", 1, tmp_path / "l4")
    assert set(pinned.status_codes) == {"OK"}  # (its timing may be invalid on a busy machine: not checked here)
    shares = _shares(pinned, GRPC_SERVICE)
    assert set(shares) == set(REPLICAS)
    assert max(shares.values()) >= 0.99, shares  # one HTTP/2 connection, one replica

    spread = _grpc_run(mesh, "grpc-l7", 1, tmp_path / "l7")
    shares = _shares(spread, GRPC_SERVICE)
    assert all(abs(share - 1 / 3) <= 0.03 for share in shares.values()), shares  # per request, in turn

    # the counts are in the run's files and its summary
    smp = json.loads((tmp_path / "l7" / "smp.json").read_text())
    assert spread.mesh is not None
    assert smp["meshload"]["mesh"]["replicas"] == {GRPC_SERVICE: spread.mesh.replicas[GRPC_SERVICE]}
    assert smp["meshload"]["mesh"]["topology"] == SIDECAR
    report = (tmp_path / "l7" / "report.html").read_text()
    assert 'id="replicas"' in report and all(name in report for name in REPLICAS)
    summary = summary_table(spread)
    assert f"replicas  {GRPC_SERVICE}: ratings-grpc-1: " in summary


@pytest.mark.parametrize("topology", [SIDECAR], indirect=True, scope="module")
def test_several_connections_spread_under_l4_too(testbed, topology, tmp_path):
    mesh = LocalTestbedMesh(testbed.folder.root)
    result = _grpc_run(mesh, "grpc-l4", 3, tmp_path / "l4")
    shares = _shares(result, GRPC_SERVICE)
    # three connections taken in turn by the balancers land on three replicas
    assert all(share > 0.2 for share in shares.values()), shares


@pytest.mark.parametrize("topology", [SIDECAR], indirect=True, scope="module")
def test_http_runs_count_the_reviews_instances(testbed, topology, tmp_path):
    mesh = LocalTestbedMesh(testbed.folder.root)
    mesh.apply("sidecar")
    plan = Plan(targets=(Target(url=f"{mesh.ingress_url}/productpage"),), load=OpenLoop(rate=RATE), duration_s=2.0)
    result = execute_run(plan, RunOptions(workers=1, out_dir=tmp_path / "run", live=False, mesh=mesh))
    assert result.mesh is not None and GRPC_SERVICE not in result.mesh.replicas  # no gRPC call made
    shares = _shares(result, "reviews")  # one reviews call per product page, taken in turn by v1, v2, v3
    assert set(shares) == {"reviews-v1", "reviews-v2", "reviews-v3"}
    assert all(abs(share - 1 / 3) <= 0.03 for share in shares.values()), shares


@pytest.mark.parametrize("topology", [SIDECAR], indirect=True, scope="module")
def test_the_cli_sends_a_grpc_scenario_to_the_testbeds_grpc_ingress(testbed, topology, tmp_path):
    env = {**os.environ, "MESHLOAD_TESTBED_DIR": str(testbed.folder.root), "COLUMNS": "200"}
    command = [sys.executable, "-m", "meshload", "run", "--testbed", "grpc-l4", "--scenario", "ratings-grpc"]
    command += ["--rate", "50", "--duration", "1s", "--warmup", "0.2s", "--connections", "1"]
    command += ["--out", str(tmp_path / "run"), "--no-history"]
    finished = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert finished.returncode == 0, finished.stderr[-2000:]
    smp = json.loads((tmp_path / "run" / "smp.json").read_text())
    grpc_port = Ports.from_json(testbed.folder.load()["ports"]).ingress_grpc
    assert smp["meshload"]["plan"]["targets"][0]["url"] == f"grpc://127.0.0.1:{grpc_port}/ratings.v1.Ratings/GetRatings"
    served = smp["meshload"]["mesh"]["replicas"][GRPC_SERVICE]
    assert sorted(served.values())[:2] == [0, 0] and max(served.values()) > 0  # one connection, one replica
    assert f"replicas  {GRPC_SERVICE}: " in finished.stdout
