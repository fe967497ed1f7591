"""The Grafana dashboard (k8s/grafana/meshload-dashboard.json): every panel's PromQL names only metrics
that meshload's live endpoint and cAdvisor (here: the testbed's cAdvisor-named exporter) expose, and
every query, with the dashboard's variables filled in, parses and returns data on a real Prometheus
server scraping both."""

from __future__ import annotations

import json
import os
import re
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.parser import text_string_to_metric_families
from tests.support.prometheus_server import PrometheusServer

from meshload.coordinator.live import LiveView
from meshload.coordinator.mesh.prometheus import selectors_for
from meshload.results.interval import IntervalRecord
from meshload.results.live_figures import LatencySummary, LiveFigures
from meshload.testbed.exporter import TestbedCollector
from meshload.testbed.state import StateFolder

pytestmark = pytest.mark.timeout(120)

DASHBOARD = Path(__file__).resolve().parents[2] / "k8s" / "grafana" / "meshload-dashboard.json"
# The dashboard's variables as they would be set for the local testbed (control plane: an application
# stands in, as the testbed has none).
TESTBED_VALUES = {
    "run_id": ".*",
    "namespace": "meshload-testbed",
    "sidecar": "haproxy-sidecar",
    "ingress_pod": "ingress-gateway",
    "ingress": "haproxy-ingress",
    "control_plane_namespace": "meshload-testbed",
    "control_plane": "productpage",
    "__rate_interval": "3s",
}
ROLES = (("productpage-v1-sidecar", "sidecar"), ("ingress-gateway", "ingress"), ("productpage-v1", "app"))
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{")


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def expressions() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query, the run_id variable's included."""
    found = []
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            found.append((panel["title"], target["expr"]))
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            found.append((f"variable {variable['name']}", variable["definition"].replace("label_values(", "")))
    return found


def filled(expr: str) -> str:
    for name, value in sorted(TESTBED_VALUES.items(), key=lambda item: -len(item[0])):
        expr = expr.replace(f"${{{name}}}", value).replace(f"${name}", value)
    assert "$" not in expr, expr
    return expr


def names_of(text: str) -> set[str]:
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return reply.read().decode()


@pytest.fixture
def live() -> Iterator[LiveView]:
    """meshload's live endpoint with two workers' figures in it."""
    view = LiveView(workers_total=2, run_id="dash", show=False, metrics_port=0)
    summary = LatencySummary(quantiles={0.5: 0.002, 0.9: 0.003, 0.99: 0.008, 0.999: 0.02}, count=100, sum_s=0.25)
    for seq, worker in enumerate(("w1", "w2")):
        record = IntervalRecord(
            worker_id=worker, seq=seq, offset_s=0, duration_s=1, sent=50, status_codes={"200": 50}, cpu_seconds=0.1
        )
        view.record(record)
    figures = LiveFigures(
        elapsed_s=1.0,
        total_s=10.0,
        rate=100.0,
        sent_rate=100.0,
        p50_ms=2.0,
        p99_ms=8.0,
        lag_p99_ms=0.1,
        completed=100,
        errors=0,
        workers_alive=2,
        workers_lost=0,
        workers_finished=0,
        in_warmup=False,
    )
    view.update(figures, {"corrected": summary, "uncorrected": summary, "schedule_lag": summary})
    yield view
    view.close()


@pytest.fixture
def exporter(tmp_path: Path) -> Iterator[str]:
    """The testbed's exporter over a state folder listing this test's own process as a sidecar, the
    ingress gateway and an application; its host:port."""
    started = psutil.Process().create_time()
    state = {
        "processes": [
            {"name": name, "kind": kind, "pid": os.getpid(), "started": started}
            for name, kind in (
                ("productpage-v1-sidecar", "sidecar"),
                ("ingress-gateway", "ingress"),
                ("productpage-v1", "app"),
            )
        ]
    }
    (tmp_path / "state.json").write_text(json.dumps(state))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TestbedCollector(StateFolder(tmp_path)))
    server, _thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    yield f"127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_every_panel_names_only_metrics_meshload_and_cadvisor_expose(live: LiveView, exporter: str) -> None:
    assert live.prometheus is not None
    exposed = names_of(scrape(f"http://127.0.0.1:{live.prometheus.port}/metrics")) | names_of(
        scrape(f"http://{exporter}/metrics")
    )
    panels = [panel for panel in dashboard()["panels"] if panel["type"] != "row"]
    assert len(panels) >= 8 and all(panel.get("targets") for panel in panels)
    used: set[str] = set()
    for title, expr in expressions():
        names = set(SELECTOR.findall(expr)) | ({expr.split(",")[0].strip()} if title.startswith("variable") else set())
        assert names, f"{title}: {expr} selects no metric"
        assert names <= exposed, f"{title}: {sorted(names - exposed)} is not exposed"
        used |= names
    # load and latency beside the mesh's CPU and memory
    assert {"meshload_latency_seconds", "meshload_responses_total", "meshload_request_errors_total"} <= used
    assert {"container_cpu_usage_seconds_total", "container_memory_working_set_bytes"} <= used


def test_the_container_choices_are_the_samplers(live: LiveView) -> None:
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    sidecars = {option["value"] for option in variables["sidecar"]["options"]}
    for mesh in ("istio", "linkerd", "consul", "testbed-haproxy"):
        matchers = selectors_for(mesh, "bookinfo").sidecar or ""
        container = re.search(r'container=~?"([^"]+)"', matchers)
        assert container is not None and container.group(1) in sidecars, mesh


def test_every_query_returns_data_from_a_real_prometheus(live: LiveView, exporter: str) -> None:
    assert live.prometheus is not None
    targets = [f"127.0.0.1:{live.prometheus.port}", exporter]
    with PrometheusServer(targets=targets, scrape_interval_s=0.5) as prometheus:
        prometheus.wait_scraped(4)
        for title, expr in expressions():
            if title.startswith("variable"):
                query = f"count by (run_id) ({filled(expr.split(',')[0])})"
            else:
                query = filled(expr)
            address = f"{prometheus.url}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
            with urllib.request.urlopen(address, timeout=5) as reply:  # a PromQL error is HTTP 400
                answer = json.load(reply)
            assert answer["status"] == "success" and answer["data"]["result"], f"{title}: {query} returned nothing"
