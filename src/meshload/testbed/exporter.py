"""The testbed's processes' CPU and memory in cAdvisor's metric names and labels, for Prometheus.

In a cluster the kubelet's cAdvisor exports every container's `container_cpu_usage_seconds_total`
(CPU seconds used, a counter) and `container_memory_working_set_bytes` with the labels `namespace`,
`pod`, `container`, `image` and `id`. This exporter serves the same two metrics for the testbed's
processes, read from the state folder at every scrape, so the queries meshload's Prometheus sampler
runs against a mesh in a cluster run unchanged against the testbed:

    namespace  "meshload-testbed"
    pod        the instance ("reviews-v2", "node-a-proxy", "ingress-gateway")
    container  the service for an application ("reviews"), "haproxy-sidecar" for a sidecar or a
               node proxy, "haproxy-ingress" for the gateway
    id         "/meshload-testbed/<pid>": tells apart an old proxy still finishing after a reload
               from its successor, as cAdvisor's cgroup id tells apart two runs of a container

Memory is the resident set (what the testbed's own sampler reads). It runs as one more testbed
process (`python -m meshload.testbed.exporter --state-dir DIR --port N`), started with the
applications and stopped by `down`.
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from .errors import TestbedFailure
from .processes import ProcessRecord
from .state import StateFolder
from .topology import ALL_INSTANCES

NAMESPACE = "meshload-testbed"
SIDECAR_CONTAINER = "haproxy-sidecar"
INGRESS_CONTAINER = "haproxy-ingress"
EXPORTER_KIND = "exporter"
LABELS = ("namespace", "pod", "container", "image", "id")

_SERVICE_OF = {instance.name: instance.service for instance in ALL_INSTANCES}


def labels_of(record: ProcessRecord) -> tuple[str, str, str, str, str] | None:
    """The cAdvisor labels of one testbed process; None for the exporter itself (not part of the mesh)."""
    if record.kind == "app":
        pod, container, image = record.name, _SERVICE_OF.get(record.name, record.name), "meshload-bookinfo"
    elif record.kind == "sidecar":
        pod, container, image = record.name.removesuffix("-sidecar"), SIDECAR_CONTAINER, "haproxy"
    elif record.kind == "node-proxy":
        pod, container, image = record.name, SIDECAR_CONTAINER, "haproxy"
    elif record.kind == "ingress":
        pod, container, image = record.name, INGRESS_CONTAINER, "haproxy"
    else:
        return None
    return NAMESPACE, pod, container, image, f"/{NAMESPACE}/{record.pid}"


class TestbedCollector(Collector):
    """Reads the state folder and every recorded process at each scrape (no thread, no cache)."""

    __test__ = False

    def __init__(self, folder: StateFolder) -> None:
        self._folder = folder

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        cpu = CounterMetricFamily(
            "container_cpu_usage_seconds", "Cumulative CPU time consumed in seconds", labels=LABELS
        )
        memory = GaugeMetricFamily("container_memory_working_set_bytes", "Current working set in bytes", labels=LABELS)
        try:
            state = self._folder.load() or {}
        except (OSError, TestbedFailure):  # a state file being replaced: this scrape shows nothing rather than failing
            state = {}
        for raw in state.get("processes", []):
            record = ProcessRecord.from_json(raw)
            labels = labels_of(record)
            if labels is None:
                continue
            try:
                process = psutil.Process(record.pid)
                with process.oneshot():
                    if abs(process.create_time() - record.started) > 0.01:
                        continue  # the pid was reused by an unrelated process
                    times = process.cpu_times()
                    rss = process.memory_info().rss
            except psutil.Error:
                continue  # exited: its series ends, as a stopped container's does
            cpu.add_metric(list(labels), times.user + times.system)
            memory.add_metric(list(labels), float(rss))
        yield cpu
        yield memory


def serve(state_dir: Path, port: int, address: str = "127.0.0.1") -> None:
    """Serve /metrics until SIGTERM or SIGINT."""
    from prometheus_client import start_http_server

    registry = CollectorRegistry(auto_describe=False)
    registry.register(TestbedCollector(StateFolder(state_dir)))
    server, _thread = start_http_server(port, addr=address, registry=registry)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.shutdown()
    server.server_close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m meshload.testbed.exporter", description=__doc__)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--address", default="127.0.0.1")
    args = parser.parse_args(argv)
    serve(args.state_dir, args.port, args.address)


if __name__ == "__main__":
    main()
