"""`meshload run --mesh M --mesh-function F`: the function is applied through the Kubernetes API (an API
server stand-in, kmock) before any load, the run's SMP mesh_config names the mesh and the builds and
mTLS the adapter found in the cluster, and everything meshload applied is gone after the run. The
"ingress" is a real local HTTP server (there is no real cluster here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support.kube_api import KubeApiStandIn

from meshload.coordinator.mesh import Cluster
from meshload.results.smp import MESH_TYPES

from .test_mesh_cluster import _pod, _workload, managed

pytestmark = pytest.mark.timeout(120)


def kubeconfig_for(kube_api: KubeApiStandIn, folder: Path) -> Path:
    path = folder / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: bench\n"
        f"clusters:\n- name: stand-in\n  cluster:\n    server: {kube_api.url}\n"
        "users:\n- name: meshload\n  user:\n    token: not-checked\n"
        "contexts:\n- name: bench\n  context:\n    cluster: stand-in\n    user: meshload\n"
    )
    return path


def meshload_run(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "meshload", "run", "--no-live", "--no-history", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)


def test_run_applies_the_function_fills_mesh_config_from_the_cluster_and_removes_it(
    kube_api: KubeApiStandIn, cluster: Cluster, http_server, tmp_path: Path
) -> None:
    cluster.apply(_workload("Deployment", "istiod", "istio-system", "discovery", "docker.io/istio/pilot:1.24.2"))
    cluster.apply(_pod("reviews-v1-abc", "istio-proxy", "docker.io/istio/proxyv2:1.24.2"))
    ingress = http_server("ok")
    before = len(kube_api.requests())
    done = meshload_run(
        *("--mesh", "istio", "--mesh-function", "retries", "--mesh-set", "attempts=2"),
        *("--ingress", ingress.url, "--kubeconfig", str(kubeconfig_for(kube_api, tmp_path))),
        *("--rate", "20", "--duration", "1s", "--warmup", "0s", "--out", str(tmp_path / "out")),
    )
    assert done.returncode == 0, done.stderr
    assert "istio retries in force" in done.stderr and "VirtualService bookinfo/reviews" in done.stderr
    assert "retries removed from namespace bookinfo" in done.stderr
    assert ingress.counters()["requests"] > 0  # the load went to the ingress given

    written = [(m, p) for m, p in kube_api.requests()[before:] if m in ("POST", "PUT", "PATCH")]
    assert any("virtualservices/reviews" in p or p.endswith("virtualservices") for _, p in written), written
    assert managed(kube_api) == set()  # removed after the run
    gateway = cluster.get("networking.istio.io/v1", "VirtualService", "bookinfo", "bookinfo")
    assert gateway is not None and "meshload/revert" not in (gateway["metadata"].get("annotations") or {})

    mesh_config = json.loads((tmp_path / "out" / "smp.json").read_text())["mesh_config"]
    assert mesh_config["mesh_type"] == {"type": MESH_TYPES["istio"], "version": "1.24.2"}
    assert (mesh_config["mesh_build"], mesh_config["proxy_build"]) == ("1.24.2", "1.24.2")
    # the baseline applied with every function puts a PeerAuthentication without mTLS, as read back
    assert mesh_config["profile"] == "retries" and mesh_config["mtls_enabled"] is False
    assert mesh_config["labels"]["mesh"] == "istio" and mesh_config["labels"]["function"] == "retries"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--mesh", "istio"), "--mesh istio: give the URL of its ingress gateway"),
        (("--mesh", "istio", "--ingress", "http://127.0.0.1:9", "--mesh-function", "bogus"), "function 'bogus'"),
        (("--mesh", "istio", "--testbed", "sidecar", "--ingress", "http://127.0.0.1:9"), "choose one"),
        (
            ("--mesh", "linkerd", "--ingress", "http://127.0.0.1:9", "--mesh-function", "lb-random"),
            "linkerd lb-random: not supported",
        ),
    ],
)
def test_bad_mesh_options_are_one_line_before_anything_is_applied(
    kube_api: KubeApiStandIn, args: tuple[str, ...], message: str, tmp_path: Path
) -> None:
    done = meshload_run(*args, "--kubeconfig", str(kubeconfig_for(kube_api, tmp_path)), "--duration", "1s")
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert not [m for m, _ in kube_api.requests() if m in ("POST", "PUT", "PATCH", "DELETE")]


def test_a_study_plan_targets_a_mesh_in_a_cluster_and_marks_what_it_cannot_express(
    kube_api: KubeApiStandIn, cluster: Cluster, http_server, tmp_path: Path
) -> None:
    ingress = http_server("ok")
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "name: istio-small\n"
        f"target: {{mesh: istio, namespace: bookinfo, ingress: '{ingress.url}'}}\n"
        "load_levels: [20]\nrepetitions: 1\nduration: 1s\nwarmup: 0s\nsettle: 0s\n"
        "functions: [sidecar, {name: retries, params: {attempts: 2}}, none]\n"
    )
    out = tmp_path / "study"
    command = [sys.executable, "-m", "meshload", "study", str(plan), "--out", str(out), "--no-history"]
    command += ["--no-pin-cpus", "--kubeconfig", str(kubeconfig_for(kube_api, tmp_path))]
    done = subprocess.run(command, capture_output=True, text=True, timeout=100, check=False)
    assert done.returncode == 0, done.stderr
    study = json.loads((out / "study.json").read_text())
    cells = {cell["function"]: cell for cell in study["cells"]}
    # BookInfo without sidecars is no mesh resource: that cell is marked, not run, and the study goes on
    assert cells["none"]["valid"] is False and not cells["none"]["run_id"]
    assert cells["none"]["validity"][0].startswith("not supported: istio: BookInfo without sidecars")
    assert cells["none"]["not_supported"].startswith("istio: BookInfo without sidecars")
    assert "not supported, skipped: istio: BookInfo without sidecars" in done.stderr
    # the others ran (their validity depends on this machine's load, not on the mesh)
    assert cells["sidecar"]["run_id"] and cells["retries"]["run_id"]
    smp = json.loads((out / cells["retries"]["run_dir"] / "smp.json").read_text())
    assert smp["mesh_config"]["profile"] == "retries" and smp["mesh_config"]["mesh_type"]["type"] == MESH_TYPES["istio"]
    written = [path for method, path in kube_api.requests() if method in ("POST", "PUT", "PATCH")]
    assert any("virtualservices" in path for path in written)
    assert managed(kube_api) == set()  # removed when the study ended


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ('{mesh: kuma, ingress: "http://gw"}', "target.mesh: Input should be 'istio', 'linkerd' or 'consul'"),
        ('{mesh: istio, ingress: "gw"}', "target.ingress: String should match pattern"),
        ("cluster", "target: 'cluster' is not a target; use testbed, or a mesh in a cluster"),
    ],
)
def test_a_bad_study_target_is_one_line_naming_the_forms(target: str, message: str, tmp_path: Path) -> None:
    from meshload.errors import PlanError
    from meshload.scenarios.study_file import load_study_plan

    plan = tmp_path / "plan.yaml"
    plan.write_text(f"target: {target}\nload_levels: [20]\nduration: 1s\nfunctions: [sidecar]\n")
    with pytest.raises(PlanError) as raised:
        load_study_plan(plan)
    assert str(raised.value).startswith(f"{plan}:1: ") and message in str(raised.value)
    assert "{mesh: istio|linkerd|consul, namespace: NS, ingress: http://URL}" in str(raised.value)
