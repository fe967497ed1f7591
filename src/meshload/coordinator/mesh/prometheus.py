"""The mesh's CPU and memory over a run's measured window, from a Prometheus server (`--prometheus URL`).

The queries use cAdvisor's metric names and labels (the kubelet exports them for every container; the
local testbed's exporter does the same for its processes), with each mesh's container names:

    sidecar          istio: istio-proxy in NS; linkerd: linkerd-proxy in NS;
                     consul: consul-dataplane* (envoy-sidecar before consul-dataplane) in NS
    ingress gateway  istio: istio-proxy in pods istio-ingressgateway-* or a Gateway API <gw>-istio-*;
                     linkerd: none of its own; consul: the same proxies in pods *ingress-gateway*
    control plane    istio: discovery in istio-system; linkerd: destination, policy, sp-validator,
                     identity, proxy-injector in linkerd; consul: consul in pods *consul-server*
    applications     every other container in NS

CPU over the window is `increase(container_cpu_usage_seconds_total[window])` at its end divided by its
length (the CPU time used divided by the window, as the testbed's own sampler computes it; Prometheus
extrapolates to the window's edges), its peak the highest `rate` over a few scrape intervals; memory is
the working set summed over the component's containers, averaged over the window's steps and its peak;
the count is the number of pods. The result is the same `MeshUsage` the mesh's own sampler gives,
with these figures in place of its own, so SMP `mesh_config` is filled the same way.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from ... import terminal
from ...errors import UsageError
from ...results.run_result import ComponentUsage, MeshUsage
from .base import MeshAdapter, MeshBaseline, ResourceSampling, Support

CPU_METRIC = "container_cpu_usage_seconds_total"
MEMORY_METRIC = "container_memory_working_set_bytes"
BYTES_PER_MB = 1024 * 1024
#: Typical cAdvisor scrape interval in a cluster (kube-prometheus: 30s, Istio's example: 15s).
DEFAULT_STEP_S = 15.0
#: A scrape after the window's end is waited for this many steps (plus a little) at most.
FRESH_WAIT_STEPS = 2.5
REQUEST_TIMEOUT_S = 10.0

# The testbed exporter's names (meshload.testbed.exporter), repeated so this module needs no testbed import.
TESTBED_NAMESPACE = "meshload-testbed"


@dataclass(frozen=True)
class MeshSelectors:
    """PromQL label matchers for each component of one mesh; None where the mesh has no such component."""

    sidecar: str | None
    ingress_gateway: str | None
    control_plane: str | None
    applications: str | None


def _not(containers: str) -> str:
    return f'container!="", container!="POD", container!~"{containers}"'


def selectors_for(mesh: str, namespace: str, control_plane_namespace: str | None = None) -> MeshSelectors:
    """The matchers for `mesh` ("istio", "linkerd", "consul", "testbed-haproxy") with BookInfo in `namespace`."""
    if mesh == "istio":
        cp = control_plane_namespace or "istio-system"
        return MeshSelectors(
            sidecar=f'namespace="{namespace}", container="istio-proxy", pod!~"istio-ingressgateway-.*"',
            ingress_gateway='container="istio-proxy", pod=~"istio-ingressgateway-.*|.*-istio-.*"',
            control_plane=f'namespace="{cp}", container="discovery"',
            applications=f'namespace="{namespace}", {_not("istio-proxy|istio-init|istio-validation")}',
        )
    if mesh == "linkerd":
        cp = control_plane_namespace or "linkerd"
        return MeshSelectors(
            sidecar=f'namespace="{namespace}", container="linkerd-proxy"',
            ingress_gateway=None,  # Linkerd has no ingress of its own: a meshed controller's proxy is a sidecar
            control_plane=f'namespace="{cp}", container=~"destination|policy|sp-validator|identity|proxy-injector"',
            applications=f'namespace="{namespace}", {_not("linkerd-proxy|linkerd-init|linkerd-network-validator")}',
        )
    if mesh == "consul":
        cp = control_plane_namespace or "consul"
        proxies = "consul-dataplane.*|envoy-sidecar"
        return MeshSelectors(
            sidecar=f'namespace="{namespace}", container=~"{proxies}", pod!~".*ingress-gateway.*"',
            ingress_gateway=f'container=~"{proxies}", pod=~".*ingress-gateway.*"',
            control_plane=f'namespace="{cp}", container="consul", pod=~".*consul-server.*"',
            applications=f'namespace="{namespace}", {_not(proxies + "|consul-connect-inject-init")}',
        )
    if mesh == "testbed-haproxy":
        ns = TESTBED_NAMESPACE
        return MeshSelectors(
            sidecar=f'namespace="{ns}", container="haproxy-sidecar"',
            ingress_gateway=f'namespace="{ns}", container="haproxy-ingress"',
            control_plane=None,  # HAProxy is configured by files: no control plane
            applications=f'namespace="{ns}", {_not("haproxy-sidecar|haproxy-ingress")}',
        )
    raise UsageError(f"--prometheus: no container names known for mesh {mesh!r}")


class PrometheusError(Exception):
    """Prometheus did not answer, or answered with an error (the message is one line)."""


class PrometheusAPI:
    """The few calls of Prometheus's HTTP API the sampler needs (GET /api/v1/query and /query_range)."""

    def __init__(self, url: str, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"--prometheus: {url!r} is not an http(s) URL; give e.g. http://prometheus:9090")
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def _get(self, path: str, params: dict[str, str]) -> object:
        address = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(address, timeout=self.timeout_s) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            try:
                detail = json.load(exc).get("error", exc.reason)
            except ValueError:
                detail = exc.reason
            raise PrometheusError(f"Prometheus at {self.url} refused {path}: {detail}") from exc
        except (OSError, ValueError) as exc:
            raise PrometheusError(f"Prometheus at {self.url} did not answer {path} ({exc})") from exc
        if body.get("status") != "success":
            raise PrometheusError(f"Prometheus at {self.url} answered {path} with {body.get('error', body)}")
        return body["data"]

    def check(self) -> str:
        """The server's version; UsageError (one line, before any load) when it does not answer."""
        try:
            data = self._get("/api/v1/status/buildinfo", {})
        except PrometheusError as exc:
            raise UsageError(f"--prometheus: {exc}; check the URL") from exc
        return str(data.get("version", "")) if isinstance(data, dict) else ""

    def query(self, promql: str, at: float) -> list[tuple[dict[str, str], float]]:
        data = self._get("/api/v1/query", {"query": promql, "time": f"{at:.3f}"})
        assert isinstance(data, dict)
        if data.get("resultType") == "scalar":
            return [({}, float(data["result"][1]))]
        return [(item["metric"], float(item["value"][1])) for item in data.get("result", [])]

    def query_range(self, promql: str, start: float, end: float, step_s: float) -> list[float]:
        """The values of a single-series expression (e.g. a `sum(...)`) at each step of [start, end]."""
        params = {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step_s:g}"}
        data = self._get("/api/v1/query_range", params)
        assert isinstance(data, dict)
        values: list[float] = []
        for item in data.get("result", []):
            values.extend(float(v) for _, v in item["values"])
        return [v for v in values if math.isfinite(v)]


def _duration(seconds: float) -> str:
    return f"{max(int(seconds * 1000), 1)}ms"


def component_usage(api: PrometheusAPI, matchers: str, start: float, end: float, step_s: float) -> ComponentUsage:
    """One component's CPU and memory over [start, end] (wall-clock seconds)."""
    window_s = max(end - start, 1e-3)
    cpu = api.query(f"sum(increase({CPU_METRIC}{{{matchers}}}[{_duration(window_s)}]))", end)
    cpu_s = cpu[0][1] if cpu else 0.0
    rate_range = _duration(max(4 * step_s, 2 * step_s + 1))
    peaks = api.query_range(f"sum(rate({CPU_METRIC}{{{matchers}}}[{rate_range}]))", start, end, step_s)
    memory = api.query_range(f"sum({MEMORY_METRIC}{{{matchers}}})", start, end, step_s)
    if not memory:  # a window shorter than one step: the value at its end
        memory = [value for _, value in api.query(f"sum({MEMORY_METRIC}{{{matchers}}})", end)]
    pods = api.query_range(f"count(count by (namespace, pod) ({MEMORY_METRIC}{{{matchers}}}))", start, end, step_s)
    mem_mb = [value / BYTES_PER_MB for value in memory]
    cpu_mcores = 1000.0 * cpu_s / window_s
    return ComponentUsage(
        count=int(max(pods, default=0)),
        cpu_mcores=cpu_mcores,
        mem_mb=sum(mem_mb) / len(mem_mb) if mem_mb else 0.0,
        cpu_mcores_max=max(1000.0 * max(peaks, default=0.0), cpu_mcores),
        mem_mb_max=max(mem_mb, default=0.0),
    )


@dataclass(frozen=True)
class PrometheusSource:
    """Where the mesh's resource use is read: the server, and its cAdvisor scrape interval (the query step)."""

    url: str
    step_s: float = DEFAULT_STEP_S

    def api(self) -> PrometheusAPI:
        return PrometheusAPI(self.url)


class PrometheusSampling:
    """Wraps a mesh's own sampler: its identity (mesh, function, builds, mTLS) with CPU and memory from
    Prometheus over the same window. `local` keeps what the mesh's own sampler measured."""

    def __init__(self, own: ResourceSampling, source: PrometheusSource, selectors: MeshSelectors) -> None:
        self._own = own
        self._source = source
        self._api = source.api()
        self._selectors = selectors
        self.local: MeshUsage | None = None
        self.start_s = time.time()
        self.end_s = 0.0

    def close_window(self) -> None:
        """End the measured window now (the mesh's own sampler stops); `stop` reads Prometheus later."""
        if self.local is None:
            self.end_s = time.time()
            self.local = self._own.stop()

    def stop(self) -> MeshUsage:
        """End the window (unless already closed) and read the figures from Prometheus."""
        self.close_window()
        assert self.local is not None
        own = self.local
        try:
            self._wait_for_scrape_after(self.end_s)
            figures = {
                name: component_usage(self._api, matchers, self.start_s, self.end_s, self._source.step_s)
                if matchers is not None
                else ComponentUsage()
                for name, matchers in dataclasses.asdict(self._selectors).items()
            }
        except PrometheusError as exc:
            # The run itself is done and worth keeping: its mesh figures stay empty, said on one line.
            terminal.warning(f"mesh CPU and memory not read: {exc}")
            return dataclasses.replace(
                own,
                sidecar=ComponentUsage(),
                ingress_gateway=ComponentUsage(),
                control_plane=ComponentUsage(),
                applications=ComponentUsage(),
            )
        if figures["sidecar"].count == 0:
            terminal.warning(
                f"Prometheus at {self._source.url} has no {MEMORY_METRIC}{{{self._selectors.sidecar}}} in the run's "
                "window: are its cAdvisor metrics scraped, and is the namespace right?"
            )
        return dataclasses.replace(
            own,
            sidecar=figures["sidecar"],
            ingress_gateway=figures["ingress_gateway"],
            control_plane=figures["control_plane"],
            applications=figures["applications"],
        )

    def _wait_for_scrape_after(self, end_s: float) -> None:
        """Wait until Prometheus holds a cAdvisor sample taken after the window's end (at most a few steps)."""
        deadline = time.monotonic() + FRESH_WAIT_STEPS * self._source.step_s + 2.0
        while True:
            latest = self._api.query(f"max(timestamp({CPU_METRIC}))", time.time())
            if latest and latest[0][1] >= end_s:
                return
            if time.monotonic() > deadline:
                return  # the figures then cover the window up to the last scrape
            time.sleep(min(self._source.step_s / 4, 1.0))


class PrometheusMesh:
    """A mesh whose resource use is read from Prometheus; everything else is the mesh's own."""

    def __init__(self, mesh: MeshAdapter, source: PrometheusSource) -> None:
        self.mesh = mesh
        self.name = mesh.name
        self.source = source
        namespace = getattr(mesh, "namespace", TESTBED_NAMESPACE)
        self.selectors = selectors_for(mesh.name, namespace, getattr(mesh, "control_plane_namespace", None))
        self.last_sampling: PrometheusSampling | None = None

    @property
    def ingress_url(self) -> str:
        return self.mesh.ingress_url

    @property
    def baseline(self) -> MeshBaseline:
        return self.mesh.baseline

    def functions(self) -> list[str]:
        return self.mesh.functions()

    def support(self, function: str, params: dict[str, str] | None = None) -> Support:
        return self.mesh.support(function, params)

    def apply(self, function: str, params: dict[str, str] | None = None) -> object:
        return self.mesh.apply(function, params)

    def remove(self) -> None:
        self.mesh.remove()

    def current_function(self) -> str:
        return self.mesh.current_function()

    def start_sampling(self, interval_s: float = 1.0) -> PrometheusSampling:
        self.last_sampling = PrometheusSampling(self.mesh.start_sampling(interval_s), self.source, self.selectors)
        return self.last_sampling
