"""`--workers k8s:N` against a Kubernetes API stand-in (kmock, speaking the real API to the official
client) holding the chart's worker Deployment, with a real Redis and real `meshload worker` processes
started by a stand-in controller when the Deployment's replica count changes: the RBAC refusals, too
few workers in time, a failed and an interrupted run (each scaled back), no cluster at all. Every
request the coordinator makes must be one the chart's Role allows.

The part after scaling, across network namespaces standing in for nodes, is in test_nodes_in_netns.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from tests.support.http_servers import refused_port
from tests.support.redis_server import RedisServer

from meshload.coordinator.mesh.base import MeshBaseline, Support, SupportLevel
from meshload.coordinator.placement import idle_fleet_workers
from meshload.coordinator.run import RunOptions, execute_run
from meshload.errors import ApiRefused, ClusterUnreachable, RunError, UsageError
from meshload.results.run_result import MeshUsage
from meshload.scenarios.plan import Plan

from .conftest import KubeFleet
from .fleet_controller import FleetController

pytestmark = pytest.mark.timeout(120)

NODES = ["node-a", "node-b", "node-c"]
#: How long a worker may take to start and register on a busy machine.
WORKER_START_S = 90.0


def _plan(url: str) -> Plan:
    return Plan(targets=[{"url": url}], load={"kind": "open", "rate": 20.0}, duration_s=1.0)


def _local_worker(redis_url: str, log_dir: Path, *allow: str):
    """launch(pod, node): a `meshload worker` on this machine, with the pod's node in its environment,
    its output in log_dir/POD.log."""

    def launch(pod: str, node: str) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MESHLOAD_")}
        env |= {"MESHLOAD_REDIS": redis_url, "MESHLOAD_NODE_NAME": node}
        args = [arg for target in allow for arg in ("--allow-target", target)]
        command = [sys.executable, "-m", "meshload", "worker", *args]
        with (log_dir / f"{pod}.log").open("wb") as log:
            return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)

    return launch


def _wait_idle(client: redis.Redis, count: int, controller: FleetController, log_dir: Path) -> None:
    deadline = time.monotonic() + WORKER_START_S
    while len(idle_fleet_workers(client)) < count:
        assert controller.error is None, controller.error
        logs = {path.name: path.read_text(errors="replace")[-300:] for path in log_dir.glob("*.log")}
        assert time.monotonic() < deadline, f"{count} worker(s) did not register; logs: {logs}"
        time.sleep(0.05)


def _settled(controller: FleetController, replicas: int) -> None:
    """Wait until the controller has acted on `replicas` and runs that many workers."""
    deadline = time.monotonic() + 30
    while controller.replica_history[-1:] != [replicas] or len(controller.running()) > replicas:
        assert time.monotonic() < deadline, (controller.replica_history, len(controller.running()))
        time.sleep(0.05)


def _controller(kube_fleet: KubeFleet, launch, schedulable: int = 1_000) -> FleetController:
    return FleetController(
        kube_fleet.api,
        kube_fleet.namespace,
        kube_fleet.deployment,
        kube_fleet.pod_labels,
        NODES,
        launch,
        schedulable=schedulable,
    )


@pytest.mark.parametrize("verb", ["get", "patch"])
def test_an_rbac_refusal_names_the_verb_and_resource_and_nothing_is_sent(
    verb: str, kube_fleet: KubeFleet, http_server
) -> None:
    target = http_server("ok")
    server_says = (
        f'deployments.apps "{kube_fleet.deployment}" is forbidden: User "system:serviceaccount:perf:perf-meshload-'
        f'coordinator" cannot {verb} resource "deployments/scale" in API group "apps" in the namespace "perf"'
    )
    kube_fleet.api.refuse(verb, "apps", "v1", "deployments", 403, server_says, subresource="scale")
    with RedisServer() as server, pytest.raises(ApiRefused) as refused:
        execute_run(
            _plan(target.url),
            RunOptions(workers=2, placement="k8s", redis_url=server.url, kubernetes=kube_fleet.fleet(), live=False),
        )
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(
        f"the Kubernetes API refused to {verb} the scale of Deployment perf/{kube_fleet.deployment} (403 Forbidden): "
        f"the account needs RBAC permission to {verb} deployments/scale (apps) in namespace perf"
    ), message
    assert server_says in message
    # A refused read scales nothing; a refused scale-up is not "scaled back" with another refused patch.
    assert len(kube_fleet.scale_patches()) == (1 if verb == "patch" else 0)
    assert target.counters()["requests"] == 0


def test_too_few_workers_in_time_says_how_many_came_and_why_and_scales_back(
    kube_fleet: KubeFleet, http_server, tmp_path: Path
) -> None:
    target = http_server("ok")
    # One pod fits on the nodes; the two the run asks for on top stay Pending.
    with (
        RedisServer() as server,
        server.client() as client,
        _controller(kube_fleet, _local_worker(server.url, tmp_path), schedulable=1) as controller,
    ):
        _wait_idle(client, 1, controller, tmp_path)
        started = time.monotonic()
        with pytest.raises(RunError) as too_few:
            fleet = kube_fleet.fleet(wait_s=2.0)
            execute_run(
                _plan(target.url),
                RunOptions(workers=3, placement="k8s", redis_url=server.url, kubernetes=fleet, live=False),
            )
        waited_s = time.monotonic() - started
        _settled(controller, 1)
        assert controller.replica_history == [1, 3, 1]
        assert len(controller.running()) == 1  # the worker that was there before the run
    message = str(too_few.value)
    assert "\n" not in message
    assert message.startswith("only 1 of 3 workers were idle in Redis after 2s; ")
    deployment = f"Deployment perf/{kube_fleet.deployment}"
    assert f"{deployment}: scaled from 1 to 3 replicas, pods: 2 Pending, 1 Running" in message
    assert "(Unschedulable: 0/3 nodes are available: 3 Insufficient cpu." in message
    assert f"`kubectl -n perf get pods -l {kube_fleet.selector}`" in message
    assert message.endswith("; the Deployment is scaled back")
    assert 2.0 <= waited_s < 15
    assert kube_fleet.replicas() == 1
    assert len(kube_fleet.scale_patches()) == 2
    assert kube_fleet.refused_by_the_role() == []
    assert target.counters()["requests"] == 0


def test_a_run_that_fails_after_placement_scales_the_fleet_back(
    kube_fleet: KubeFleet, http_server, tmp_path: Path
) -> None:
    target = http_server("ok")
    with RedisServer() as server, server.client() as client:
        # Workers that allow another network only: they refuse the loopback target of the run.
        launch = _local_worker(server.url, tmp_path, "192.0.2.0/24")
        with _controller(kube_fleet, launch) as controller:
            _wait_idle(client, 1, controller, tmp_path)
            options = RunOptions(
                workers=2, placement="k8s", redis_url=server.url, kubernetes=kube_fleet.fleet(), live=False
            )
            with pytest.raises(RunError) as refused:
                execute_run(_plan(target.url), options)
            assert "refused the run: target 127.0.0.1 is not in its allowlist (192.0.2.0/24)" in str(refused.value)
            assert kube_fleet.replicas() == 1  # back, before execute_run returned
            _settled(controller, 1)
            assert controller.replica_history == [1, 2, 1] and len(controller.running()) == 1
    requests = kube_fleet.requests()
    assert [method for method, _ in requests if method == "PATCH"] == ["PATCH", "PATCH"]
    assert {("GET", f"/apis/apps/v1/namespaces/perf/deployments/{kube_fleet.deployment}/scale")} <= set(requests)
    assert kube_fleet.refused_by_the_role() == []
    assert target.counters()["requests"] == 0


def test_an_interrupted_run_scales_the_fleet_back(kube_fleet: KubeFleet, http_server, tmp_path: Path) -> None:
    """`meshload run --workers k8s:2` as the chart's Job runs it (the Deployment, selector and namespace
    from its environment, the API from a kubeconfig), interrupted while it waits for workers."""
    target = http_server("ok")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: perf\n"
        f"clusters: [{{name: stand-in, cluster: {{server: '{kube_fleet.api.url}'}}}}]\n"
        "users: [{name: coordinator, user: {token: not-checked}}]\n"
        "contexts: [{name: perf, context: {cluster: stand-in, user: coordinator, namespace: perf}}]\n"
    )
    with RedisServer() as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MESHLOAD_", "KUBERNETES_"))}
        env |= {
            "KUBECONFIG": str(kubeconfig),
            "MESHLOAD_REDIS": server.url,
            "MESHLOAD_K8S_WORKER_DEPLOYMENT": kube_fleet.deployment,
            "MESHLOAD_K8S_WORKER_SELECTOR": kube_fleet.selector,
        }  # no namespace: the kubeconfig context's
        run = subprocess.Popen(
            [sys.executable, "-m", "meshload", "run", target.url, "--rate", "20", "-d", "1s", "--workers", "k8s:2"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while kube_fleet.replicas() != 2:
                assert run.poll() is None, run.communicate()
                assert time.monotonic() < deadline, "the run never scaled the fleet"
                time.sleep(0.05)
            run.send_signal(signal.SIGINT)
            _, stderr = run.communicate(timeout=30)
        finally:
            if run.poll() is None:
                run.kill()
                run.communicate()
    assert run.returncode != 0 and "Traceback" not in stderr, stderr
    assert kube_fleet.replicas() == 1
    assert len(kube_fleet.scale_patches()) == 2
    assert kube_fleet.refused_by_the_role() == []
    assert target.counters()["requests"] == 0


def test_no_cluster_is_one_line_before_anything_is_sent(
    http_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from meshload.coordinator.k8s_placement import KubernetesFleet

    target = http_server("ok")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    api = f"http://127.0.0.1:{refused_port()}"
    with RedisServer() as server:
        for fleet, expected in (
            (KubernetesFleet(deployment="w", namespace="perf"), "no Kubernetes configuration: no kubeconfig at "),
            (KubernetesFleet(deployment="w", namespace="perf", api_host=api), f"no Kubernetes API answered at {api} ("),
        ):
            with pytest.raises(ClusterUnreachable) as unreachable:
                execute_run(
                    _plan(target.url),
                    RunOptions(workers=2, placement="k8s", redis_url=server.url, kubernetes=fleet, live=False),
                )
            assert str(unreachable.value).startswith(expected) and "\n" not in str(unreachable.value)
    assert target.counters()["requests"] == 0


def test_the_fleet_must_be_named_and_reached_through_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("MESHLOAD_")]:
        monkeypatch.delenv(name)
    with pytest.raises(UsageError, match=r"^--workers k8s:N: which Deployment runs the workers\? Give --k8s-deploy"):
        RunOptions(workers=2, placement="k8s", redis_url="redis://127.0.0.1:9/0")
    monkeypatch.setenv("MESHLOAD_K8S_WORKER_DEPLOYMENT", "perf-meshload-worker")
    monkeypatch.setenv("MESHLOAD_POD_NAMESPACE", "perf")
    with pytest.raises(UsageError, match=r"^--workers k8s:N: give the fleet's Redis \(--redis URL"):
        RunOptions(workers=2, placement="k8s")
    options = RunOptions(workers=2, placement="k8s", redis_url="redis://127.0.0.1:9/0")
    assert options.kubernetes is not None
    assert (options.kubernetes.deployment, options.kubernetes.namespace) == ("perf-meshload-worker", "perf")


class _PlainTarget:
    """A "mesh" that is one HTTP server, for a study whose subject here is where its workers come from."""

    name = "plain"

    def __init__(self, url: str) -> None:
        self.ingress_url = url.rstrip("/")
        self.applied: list[str] = []

    @property
    def baseline(self) -> MeshBaseline:
        return MeshBaseline(mesh=self.name, mtls_encrypted=False)

    def functions(self) -> list[str]:
        return ["none", "sidecar"]

    def support(self, function: str, params: dict[str, str] | None = None) -> Support:
        return Support(self.name, function, SupportLevel.SUPPORTED)

    def apply(self, function: str, params: dict[str, str] | None = None) -> object:
        self.applied.append(function)
        return None

    def remove(self) -> None:
        self.applied.append("removed")

    def current_function(self) -> str:
        return self.applied[-1] if self.applied else "none"

    def start_sampling(self, interval_s: float = 1.0) -> _NoSampling:
        return _NoSampling()


class _NoSampling:
    def stop(self) -> MeshUsage:
        return MeshUsage(mesh="plain")


@pytest.mark.slow
def test_a_study_with_workers_k8s_n_scales_the_fleet_once_for_all_its_cells(
    kube_fleet: KubeFleet, http_server, tmp_path: Path
) -> None:
    from meshload.coordinator.study import StudyOptions, run_study
    from meshload.scenarios.study_file import load_study_plan

    target = http_server("ok")
    plan_file = tmp_path / "study.yaml"
    plan_file.write_text(
        "name: k8s\nworkers: k8s:2\nload_levels: [20]\nrepetitions: 1\nduration: 1s\nwarmup: 0s\nsettle: 0s\n"
        f"scenario: {_scenario(tmp_path)}\nfunctions: [none, sidecar]\n"
    )
    plan = load_study_plan(plan_file)
    with RedisServer() as server, server.client() as client:
        with _controller(kube_fleet, _local_worker(server.url, tmp_path)) as controller:
            _wait_idle(client, 1, controller, tmp_path)
            mesh = _PlainTarget(target.url)
            options = StudyOptions(
                out_dir=tmp_path / "study", redis_url=server.url, mesh=mesh, kubernetes=kube_fleet.fleet()
            )
            study = run_study(plan, options)
            assert kube_fleet.replicas() == 1  # back, before run_study returned
            _settled(controller, 1)
            assert controller.replica_history == [1, 2, 1]  # up once for the study, back once after it
        kept = list(client.scan_iter("meshload:results:run:*"))
    # each cell's function applied once, and what was applied removed when the study ended
    assert sorted(mesh.applied[:-1]) == ["none", "sidecar"] and mesh.applied[-1] == "removed"
    # Each cell ran on the fleet (its validity on a busy machine is not the subject here).
    assert len(study.cells) == 2 and all(cell.run_id and cell.run_dir for cell in study.cells), study.cells
    for cell in study.cells:
        smp = json.loads((tmp_path / "study" / cell.run_dir / "smp.json").read_text())
        assert sorted(worker["node"] for worker in smp["meshload"]["workers"]) == NODES[:2]
    assert len(kept) == 2  # every cell's files kept in the fleet's Redis
    assert len(kube_fleet.scale_patches()) == 2 and kube_fleet.refused_by_the_role() == []
    assert target.counters()["requests"] == 2 * 20


def _scenario(folder: Path) -> Path:
    path = folder / "scenario.yaml"
    path.write_text("url: /\nload: {rate: 20}\nduration: 1s\n")
    return path
