"""The Prometheus resource sampler against a real Prometheus server scraping the local testbed's
cAdvisor-named exporter: a real run's `mesh_config` from Prometheus agrees with the testbed's own
(psutil) sampler over the same window, and the exporter speaks cAdvisor's names and labels."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.support.prometheus_server import PrometheusServer

from meshload.coordinator.mesh.local import LocalTestbedMesh, TestbedSampling
from meshload.coordinator.mesh.prometheus import PrometheusAPI, PrometheusSource, selectors_for
from meshload.coordinator.run import RunOptions, execute_run
from meshload.errors import UsageError
from meshload.results.run_result import MeshUsage
from meshload.scenarios.plan import OpenLoop, Plan, Target
from meshload.testbed.processes import marked_processes

pytestmark = pytest.mark.timeout(180)

SCRAPE_S = 0.5


class RecordingTestbed(LocalTestbedMesh):
    """The testbed, keeping what its own sampler measured (the run keeps only Prometheus's figures)."""

    __test__ = False

    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir)
        self.own: list[MeshUsage] = []

    def start_sampling(self, interval_s: float = 1.0) -> TestbedSampling:
        sampling = super().start_sampling(0.25)
        own = self.own

        class Recorded(TestbedSampling):
            def __init__(self) -> None:
                pass

            def stop(self) -> MeshUsage:
                usage = sampling.stop()
                own.append(usage)
                return usage

        return Recorded()


@pytest.fixture(scope="module")
def testbed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RecordingTestbed]:
    mesh = RecordingTestbed(tmp_path_factory.mktemp("tb"))
    mesh.up("sidecar")
    mark = mesh.testbed.folder.load()["mark"]  # type: ignore[index]
    yield mesh
    mesh.down()
    assert marked_processes(mark) == []


@pytest.fixture(scope="module")
def prometheus(testbed: RecordingTestbed) -> Iterator[PrometheusServer]:
    metrics_url = testbed.status()["metrics_url"]
    target = metrics_url.removeprefix("http://").removesuffix("/metrics")
    with PrometheusServer(targets=[target], scrape_interval_s=SCRAPE_S) as server:
        server.wait_scraped(3)
        yield server


def test_the_exporter_serves_cadvisor_names_and_labels_for_every_mesh_process(testbed: RecordingTestbed) -> None:
    with urllib.request.urlopen(testbed.status()["metrics_url"], timeout=5) as response:
        families = {family.name: family for family in text_string_to_metric_families(response.read().decode())}
    cpu = families["container_cpu_usage_seconds"]  # the parser drops a counter's `_total`
    assert cpu.type == "counter"
    memory = families["container_memory_working_set_bytes"]
    by_container: dict[str, int] = {}
    for sample in memory.samples:
        assert set(sample.labels) == {"namespace", "pod", "container", "image", "id"}
        assert sample.labels["namespace"] == "meshload-testbed" and sample.value > 1e6
        by_container[sample.labels["container"]] = by_container.get(sample.labels["container"], 0) + 1
    pids = testbed.testbed.pids_by_kind()
    assert by_container["haproxy-sidecar"] == len(pids["sidecar"]) > 0
    assert by_container["haproxy-ingress"] == len(pids["ingress"]) == 1
    assert sum(by_container.values()) == sum(len(p) for p in pids.values())  # the exporter is not listed
    assert {s.labels["id"] for s in cpu.samples} == {s.labels["id"] for s in memory.samples}


def test_a_runs_mesh_config_from_prometheus_agrees_with_the_testbeds_own_sampler(
    testbed: RecordingTestbed, prometheus: PrometheusServer, tmp_path: Path
) -> None:
    plan = Plan(
        targets=(Target(url=f"{testbed.ingress_url}/productpage"),),
        load=OpenLoop(rate=300),
        duration_s=10.0,
        warmup_s=1.0,
    )
    options = RunOptions(
        workers=1,
        live=False,
        out_dir=tmp_path / "out",
        mesh=testbed,
        prometheus=PrometheusSource(prometheus.url, step_s=SCRAPE_S),
    )
    result = execute_run(plan, options)
    assert result.completed > 1500 and not result.errors
    from_prometheus, own = result.mesh, testbed.own[-1]
    assert from_prometheus is not None

    # the same identity: mesh, function, builds, mTLS come from the testbed's sampler
    assert (from_prometheus.mesh, from_prometheus.function, from_prometheus.proxy_version) == (
        own.mesh,
        own.function,
        own.proxy_version,
    )
    sidecar, own_sidecar = from_prometheus.sidecar, own.sidecar
    print(f"sidecars: Prometheus {sidecar}, testbed sampler {own_sidecar}")
    assert own_sidecar.cpu_mcores > 20  # the sidecars did work, so the comparison means something
    assert sidecar.count == own_sidecar.count > 0
    assert sidecar.cpu_mcores == pytest.approx(own_sidecar.cpu_mcores, rel=0.10)
    assert sidecar.mem_mb == pytest.approx(own_sidecar.mem_mb, rel=0.10)
    assert sidecar.cpu_mcores_max >= sidecar.cpu_mcores and sidecar.mem_mb_max >= sidecar.mem_mb
    assert from_prometheus.ingress_gateway.count == 1
    assert from_prometheus.ingress_gateway.cpu_mcores == pytest.approx(own.ingress_gateway.cpu_mcores, rel=0.25)
    assert from_prometheus.control_plane.count == 0  # the testbed has none
    assert from_prometheus.applications.count == own.applications.count

    # SMP mesh_config carries Prometheus's figures, as it carries the testbed sampler's without it
    smp = json.loads((tmp_path / "out" / "smp.json").read_text())
    mesh_config = smp["mesh_config"]
    assert mesh_config["sidecar"] == {
        "count": sidecar.count,
        "cpu_mcores": round(sidecar.cpu_mcores),
        "mem_mb": round(sidecar.mem_mb),
    }
    assert mesh_config["profile"] == "sidecar" and mesh_config["mtls_enabled"] is False


def test_a_prometheus_that_does_not_answer_is_one_line_before_any_load(refused_url: str) -> None:
    with pytest.raises(UsageError, match=r"^--prometheus: Prometheus at .* did not answer .*; check the URL$"):
        PrometheusAPI(refused_url).check()
    with pytest.raises(UsageError, match="not an http"):
        PrometheusAPI("prometheus:9090")


def test_each_mesh_selects_its_own_containers() -> None:
    assert 'container="istio-proxy"' in (selectors_for("istio", "bookinfo").sidecar or "")
    assert 'container="discovery"' in (selectors_for("istio", "bookinfo").control_plane or "")
    linkerd = selectors_for("linkerd", "books", "linkerd-cp")
    assert linkerd.sidecar == 'namespace="books", container="linkerd-proxy"' and linkerd.ingress_gateway is None
    assert 'namespace="linkerd-cp"' in (linkerd.control_plane or "")
    assert "consul-dataplane" in (selectors_for("consul", "bookinfo").sidecar or "")
    with pytest.raises(UsageError, match="no container names known for mesh 'kuma'"):
        selectors_for("kuma", "bookinfo")


@pytest.mark.parametrize("command", [["run", "http://127.0.0.1:9/", "--duration", "1s"], ["study", "--quick"]])
def test_run_and_study_refuse_a_silent_prometheus_before_any_load(command: list[str], refused_url: str) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "meshload", *command, "--prometheus", refused_url, "--no-history"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--prometheus: Prometheus at" in lines[0] and "check the URL" in lines[0]


def test_a_prometheus_gone_after_the_run_leaves_empty_figures_and_keeps_the_identity(
    refused_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from meshload.coordinator.mesh.prometheus import PrometheusSampling
    from meshload.results.run_result import ComponentUsage

    class Own:
        def stop(self) -> MeshUsage:
            return MeshUsage(mesh="istio", function="retries", mesh_version="1.24.2", sidecar=ComponentUsage(count=3))

    sampling = PrometheusSampling(Own(), PrometheusSource(refused_url, step_s=0.1), selectors_for("istio", "bookinfo"))
    usage = sampling.stop()
    assert (usage.mesh, usage.function, usage.mesh_version) == ("istio", "retries", "1.24.2")
    assert usage.sidecar == ComponentUsage()  # not the mesh's own figures passed off as Prometheus's
    assert "mesh CPU and memory not read: Prometheus at" in capsys.readouterr().err
