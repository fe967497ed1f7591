"""A run across "nodes": `--workers k8s:3` against the Kubernetes API stand-in (kmock) holding the
chart's worker Deployment, whose stand-in controller starts each worker pod as a real `meshload worker`
process in a network namespace of its own (a node, with its own address, and its own host name as a pod
has). Redis and the target listen on the root side of the nodes' veth pairs, so every record and every
request crosses that network. The run is spread over the three, each worker's host and node is in the
report, the Deployment is scaled back afterwards, and the run's files are fetched back from Redis.

Needs root for `ip netns` (here and in CI): without it the test fails, it does not skip.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.support.http_servers import start_server
from tests.support.netns import NodeNetwork
from tests.support.redis_server import RedisServer

from meshload.coordinator.placement import idle_fleet_workers
from meshload.coordinator.run import RunOptions, execute_run
from meshload.scenarios.plan import Plan

from .conftest import KubeFleet
from .fleet_controller import FleetController

pytestmark = pytest.mark.timeout(180)

NODES = ["node-a", "node-b", "node-c"]
PASSWORD = "netns-test-pw"
RATE = 60.0
DURATION_S = 2.0


@pytest.mark.slow
def test_a_run_across_three_nodes_scaled_from_the_api(kube_fleet: KubeFleet, tmp_path: Path) -> None:
    with NodeNetwork(len(NODES)) as nodes:
        target = start_server("ok", host=nodes.gateway)
        try:
            with RedisServer(password=PASSWORD, also_bind=(nodes.gateway,)) as server:
                _run_across(nodes, server, target, kube_fleet, tmp_path)
        finally:
            target.stop()
    assert nodes.leftovers() == []  # namespaces, veths, bridge: all gone


def _run_across(nodes: NodeNetwork, server: RedisServer, target, kube_fleet: KubeFleet, tmp_path: Path) -> None:
    redis_url = server.url_at(nodes.gateway)  # what the nodes reach; the coordinator uses it too

    def launch(pod: str, node: str) -> subprocess.Popen[bytes]:
        """A worker pod on `node`: its own network namespace, its own host name (the pod's)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MESHLOAD_")}
        env |= {"MESHLOAD_REDIS": redis_url, "MESHLOAD_NODE_NAME": node}  # as the chart's pod spec gives them
        worker = [sys.executable, "-m", "meshload", "worker", "--allow-target", str(nodes.network)]
        inside = ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', pod, *worker]
        with (tmp_path / f"{pod}.log").open("wb") as log:
            return subprocess.Popen(
                nodes.command(NODES.index(node), inside), env=env, stdout=log, stderr=subprocess.STDOUT
            )

    controller = FleetController(
        kube_fleet.api, kube_fleet.namespace, kube_fleet.deployment, kube_fleet.pod_labels, NODES, launch
    )
    with controller, server.client() as client:
        deadline = time.monotonic() + 60
        while len(idle_fleet_workers(client)) < 1:  # the one replica the Deployment has before the run
            assert controller.error is None and time.monotonic() < deadline, _logs(tmp_path)
            time.sleep(0.05)

        plan = Plan(targets=[{"url": target.url}], load={"kind": "open", "rate": RATE}, duration_s=DURATION_S)
        out = tmp_path / "run"
        options = RunOptions(
            workers=3,
            placement="k8s",
            redis_url=redis_url,
            kubernetes=kube_fleet.fleet(wait_s=90),
            out_dir=out,
            live=False,
        )
        result = execute_run(plan, options)

        # Spread across the three nodes: every worker sent its share, from its own node's address.
        assert len(result.workers) == 3 and not any(worker.lost for worker in result.workers)
        assert all(worker.requests > 0 for worker in result.workers), result.workers
        assert result.completed == target.counters()["requests"] == RATE * DURATION_S
        peers = target.counters()["peers"]
        assert set(peers) == {nodes.address(index) for index in range(3)}, peers
        assert sorted(peers.values()) == sorted(worker.requests for worker in result.workers)
        pods = {worker.host: worker.node for worker in result.workers}  # each worker's pod and node
        assert pods.items() <= controller.created.items() and sorted(pods.values()) == NODES, pods

        # The same in the report's files.
        smp = json.loads((out / "smp.json").read_text())
        assert {(w["host"], w["node"]) for w in smp["meshload"]["workers"]} == set(pods.items())
        report = (out / "report.html").read_text()
        workers_table = report.split('<table id="workers">', 1)[1].split("</table>", 1)[0]
        assert "<th>node</th>" in workers_table
        assert all(f"<td>{pod}</td><td>{node}</td>" in workers_table for pod, node in pods.items())

        # Scaled back: one replica, one worker process still running, two scale patches, all allowed.
        assert kube_fleet.replicas() == 1
        deadline = time.monotonic() + 20
        while len(controller.running()) != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert controller.replica_history == [1, 3, 1] and len(controller.running()) == 1
        assert len(kube_fleet.scale_patches()) == 2
        assert kube_fleet.refused_by_the_role() == []

        # The run's files fetched back from Redis, as from outside the cluster.
        fetched = tmp_path / "fetched"
        done = subprocess.run(
            [sys.executable, "-m", "meshload", "results", "get", result.run_id, "--out", str(fetched)],
            env={**os.environ, "MESHLOAD_REDIS": redis_url},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == str(fetched)
        for name in ("smp.json", "report.html", "fortio.json", "histograms.hlog"):
            assert (fetched / name).read_bytes() == (out / name).read_bytes(), name


def _logs(folder: Path) -> str:
    return "\n".join(f"{path.name}: {path.read_text(errors='replace')[-500:]}" for path in folder.glob("*.log"))


def test_the_nodes_go_away_with_what_runs_in_them_even_when_the_test_fails() -> None:
    with pytest.raises(RuntimeError, match="the test failed"), NodeNetwork(2) as nodes:
        sleeper = subprocess.Popen(nodes.command(1, ["sleep", "60"]))
        with socket.create_server((nodes.gateway, 0)) as listener:  # the root side of the nodes' veths
            connect = f"import socket; socket.create_connection({listener.getsockname()!r}, timeout=5)"
            inside = nodes.command(0, [sys.executable, "-c", connect])
            reached = subprocess.run(inside, capture_output=True, check=False)
        assert reached.returncode == 0, reached.stderr
        assert sleeper.pid in NodeNetwork.pids(nodes.namespaces[1])
        raise RuntimeError("the test failed")
    assert sleeper.wait(timeout=5) != 0  # stopped by the clean-up, not finished
    assert nodes.leftovers() == []
