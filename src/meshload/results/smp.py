"""A run as a Service Mesh Performance (SMP v0.6.1) document, the way Meshery reads it.

Two kinds of readers parse it: Meshery, with Go's `encoding/json` on the generated structs, and
protobuf-based SMP readers with the protobuf JSON mapping. The document is what both accept: the
protos' snake_case field names, enums as integers, int64 values as JSON numbers (reference/smp.md
§3), `google.protobuf.Timestamp` as an RFC 3339 string in UTC (`2020-03-17T14:53:05.499Z`, as the SMP
repository's examples write it), and no field the messages do not have. Four documents are
written side by side and linked by real UUIDs: `config` (PerformanceTestConfig), `result`
(PerformanceTestResult, latencies in real milliseconds), `mesh_config` (ServiceMeshConfig, with the
mesh's measured CPU and memory) and `env` (EnvironmentConfig).

What SMP has no field for (status codes, transport errors, the full histograms, p99.9/p99.99, the
generator's self-check, the per-second timeseries, per-worker figures) goes into the extension block
`meshload`, which also holds everything `outputs.load_run_result` needs to rebuild the run.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from ..scenarios.plan import ClosedLoop, OpenLoop, Plan
from .histogram import LatencyHistogram
from .run_result import ComponentUsage, MeshUsage, RunResult

SMP_VERSION = "v0.6.1"
LOAD_GENERATOR = "meshload"

#: PerformanceTestConfig.Client.Protocol (HTTP/2 is HTTP there; the meshload block says which version).
CLIENT_PROTOCOL_HTTP = 1
CLIENT_PROTOCOL_GRPC = 4
#: ServiceMesh.Type, by the names meshload's adapters use.
MESH_TYPES: dict[str, int] = {
    "app_mesh": 1,
    "consul": 2,
    "istio": 3,
    "kuma": 4,
    "linkerd": 5,
    "traefik_mesh": 6,
    "octarine": 7,
    "network_service_mesh": 8,
    "tanzu": 9,
    "open_service_mesh": 10,
    "nginx_service_mesh": 11,
    "cilium_service_mesh": 12,
}
INVALID_MESH = 0

# Namespace of the documents' ids: uuid5 of the run, so rendering a run again gives the same ids.
_ID_NAMESPACE = uuid.UUID("6f1d3c52-7b0e-4d8e-9a51-2f0c4b8e6d10")


def document_ids(result: RunResult) -> dict[str, str]:
    """The UUIDs of the four documents of a run, derived from its id and start."""
    seed = f"{result.run_id}/{result.started_unix_ms}"
    return {
        part: str(uuid.uuid5(_ID_NAMESPACE, f"{seed}/{part}")) for part in ("config", "result", "mesh_config", "env")
    }


def go_duration(seconds: float) -> str:
    """A duration as Go's `time.Duration.String()` writes it: "30s", "1m30s", "1h0m0s", "250ms"."""
    total_ns = round(seconds * 1e9)
    if total_ns == 0:
        return "0s"
    sign = "-" if total_ns < 0 else ""
    total_ns = abs(total_ns)
    if total_ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if total_ns >= size:
                return f"{sign}{_trim(total_ns / size)}{unit}"
    hours, rest_ns = divmod(total_ns, 3_600_000_000_000)
    minutes, rest_ns = divmod(rest_ns, 60_000_000_000)
    secs = _trim(rest_ns / 1e9)
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{sign}{minutes}m{secs}s"
    return f"{sign}{secs}s"


def _trim(value: float) -> str:
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return text or "0"


def rfc3339(unix_ms: int) -> str:
    """A wall-clock instant as RFC 3339 in UTC, millisecond precision: the protobuf JSON mapping of
    `google.protobuf.Timestamp`, and Go's `time.Time` for Fortio's `StartTime`."""
    instant = datetime.fromtimestamp(unix_ms / 1000.0, tz=UTC)
    return instant.strftime("%Y-%m-%dT%H:%M:%S.") + f"{unix_ms % 1000:03d}Z"


def smp_labels(result: RunResult) -> dict[str, str]:
    """The `labels` map (strings only): the plan's labels, the study cell, and summary figures."""
    labels = {str(key): str(value) for key, value in result.labels.items()}
    if result.mesh is not None:
        labels.setdefault("function", result.mesh.function)
        labels["mesh"] = result.mesh.mesh
        for name, value in sorted(result.mesh.profile.items()):
            labels.setdefault(f"function.{name}", str(value))
    # The study cell is always named, so every document says what it measured.
    labels.setdefault("function", "none")
    labels.setdefault("load_level", labels.get("load_rps", _load_level(result.plan)))
    labels.setdefault("repetition", "1")
    labels["meshload.run_id"] = result.run_id
    labels["meshload.valid"] = "true" if result.valid else "false"
    labels["x.errors"] = str(result.error_count)
    return labels


def _load_level(plan: Plan) -> str:
    """The offered load as text: requests per second, or the clients of a closed loop."""
    if isinstance(plan.load, ClosedLoop):
        return f"concurrency={plan.load.concurrency}"
    return f"{plan.load.rate:g}"


def _clients(result: RunResult) -> list[dict[str, object]]:
    """One SMP Client per worker: each sends its share of the plan."""
    plan = result.plan
    workers = result.workers or []
    count = max(len(workers), 1)
    names = [w.id for w in workers] or ["worker-0"]
    clients = []
    for index, name in enumerate(names):
        if isinstance(plan.load, ClosedLoop):
            base, extra = divmod(plan.load.concurrency, count)
            connections = base + (1 if index < extra else 0)
            rps = 0  # as fast as the clients go
        else:
            connections = plan.max_connections
            rps = round(plan.load.rate / count)
        if plan.multiplexed:
            connections = plan.max_connections  # HTTP/2, gRPC: the clients' requests share these
        clients.append(
            {
                "internal": False,
                "load_generator": LOAD_GENERATOR,
                "protocol": CLIENT_PROTOCOL_GRPC if plan.protocol == "grpc" else CLIENT_PROTOCOL_HTTP,
                "connections": int(connections),
                "rps": int(rps),
                "headers": dict(plan.headers),
                "cookies": {},
                "body": plan.body or "",
                "content_type": plan.headers.get("Content-Type", plan.headers.get("content-type", "")),
                "endpoint_urls": [target.url for target in plan.targets],
                "additional_options": _load_options(plan, name),
            }
        )
    return clients


def _load_options(plan: Plan, worker_id: str) -> str:
    load = plan.load
    options: dict[str, object] = {"worker_id": worker_id, "load_model": load.kind, "protocol": plan.protocol}
    if isinstance(load, OpenLoop):
        options["arrival"] = load.arrival
        options["rate_total"] = load.rate
    else:
        options["concurrency_total"] = load.concurrency
        options["think_time_s"] = load.think_time_s
    options["warmup_s"] = plan.warmup_s
    return json.dumps(options, sort_keys=True)


def _component(usage: ComponentUsage, **extra: int) -> dict[str, int]:
    """An SMP resource block (all int32): count, cpu_mcores, mem_mb."""
    block = {"count": int(usage.count), "cpu_mcores": round(usage.cpu_mcores), "mem_mb": round(usage.mem_mb)}
    block.update(extra)
    return block


def _mesh_config(result: RunResult, ids: dict[str, str], labels: dict[str, str]) -> dict[str, object]:
    mesh = result.mesh if result.mesh is not None else MeshUsage()
    return {
        "smp_version": SMP_VERSION,
        "id": ids["mesh_config"],
        "labels": dict(labels),
        "ingress_gateway": _component(mesh.ingress_gateway, rps=round(result.actual_rps)),
        "sidecar": _component(mesh.sidecar),
        "mesh_control_plane": _component(mesh.control_plane),
        "mtls_enabled": mesh.mtls_enabled,
        "mesh_build": mesh.mesh_version,
        "proxy_build": mesh.proxy_version,
        "profile": mesh.function,
        "mesh_type": {
            "type": MESH_TYPES.get(mesh.mesh.lower().replace("-", "_"), INVALID_MESH),
            "version": mesh.mesh_version,
        },
    }


def _env(result: RunResult, ids: dict[str, str], labels: dict[str, str]) -> dict[str, object]:
    environment = result.environment
    nodes = environment.get("nodes")
    if not isinstance(nodes, list):
        nodes = [
            {
                "type": str(environment.get("hostname", "local")),
                "cores": _count(environment.get("cpu_cores")),
                "mem_mb": _count(environment.get("memory_mb")),
            }
        ]
    workloads = []
    if result.mesh is not None and result.mesh.applications.count:
        apps = result.mesh.applications
        workloads.append(
            {
                "name": "applications",
                "count": int(apps.count),
                "cpu_mcores": round(apps.cpu_mcores),
                "mem_mb": round(apps.mem_mb),
            }
        )
    return {
        "smp_version": SMP_VERSION,
        "id": ids["env"],
        "labels": dict(labels),
        "kubernetes_version": str(environment.get("kubernetes_version", "")),
        "nodes": nodes,
        "individual_workloads": workloads,
        "traffic_metadata": {"host_endpoint": result.plan.targets[0].url},
    }


def _count(value: object) -> int:
    """A whole number from the environment's JSON (absent or unreadable: 0)."""
    return int(value) if isinstance(value, int | float | str) and str(value).strip() else 0


def _latencies_ms(histogram: LatencyHistogram) -> dict[str, float]:
    """SMP's Latency message from the corrected histogram, in real milliseconds."""
    values = histogram.values_at_percentiles([50.0, 90.0, 99.0])
    return {
        "min": histogram.min_us / 1000.0,
        "average": histogram.mean_us() / 1000.0,
        "p50": values[50.0] / 1000.0,
        "p90": values[90.0] / 1000.0,
        "p99": values[99.0] / 1000.0,
        "max": histogram.max_us / 1000.0,
    }


def extension_block(result: RunResult) -> dict[str, object]:
    """The `meshload` block: what SMP has no field for, and what rebuilding the run needs."""
    return {
        "run_id": result.run_id,
        "protocol": result.plan.protocol,
        "requests": result.completed,
        "sent": result.sent,
        "status_codes": dict(result.status_codes),
        "errors": dict(result.errors),
        "bytes_received": result.bytes_received,
        "late": result.late,
        "missed": result.missed,
        "clamped": result.clamped,
        "actual_rps": result.actual_rps,
        "measured_s": result.measured_s,
        "started_unix_ms": result.started_unix_ms,
        "ended_unix_ms": result.ended_unix_ms,
        "start_time": rfc3339(result.started_unix_ms),
        "warmup": {"completed": result.warmup_completed, "duration_s": result.warmup_s},
        "percentiles_ms": result.corrected.percentiles_ms(),
        "uncorrected_percentiles_ms": result.uncorrected.percentiles_ms(),
        "schedule_lag_ms": result.lag.percentiles_ms(),
        "mean_ms": result.corrected.mean_us() / 1000.0,
        "stddev_ms": result.corrected.stddev_us() / 1000.0,
        "histogram": result.corrected.encode(),
        "uncorrected_histogram": result.uncorrected.encode(),
        "schedule_lag_histogram": result.lag.encode(),
        "histogram_unit": "us",
        "workers": [dataclasses.asdict(worker) for worker in result.workers],
        "valid": result.valid,
        "degraded": result.degraded,
        "partial": result.partial,
        "validity": list(result.validity),
        # The same reasons with a stable cause code and their effect, for programs to read.
        "reasons": [dataclasses.asdict(reason) for reason in result.reasons],
        "connections": {
            "opened": result.connects,
            "connect_ms_mean": result.connect_ms_mean,
            "connect_ms_max": result.connect_ms_max,
            "connect_ms_total": result.connect_ms_total,
        },
        "interrupted": bool(result.interrupted),
        "interrupted_by": result.interrupted,
        "max_clock_offset_ms": result.max_clock_offset_ms,
        "timeseries": [
            {
                "offset_s": point.offset_s,
                "rate": point.rate,
                "sent_rate": point.sent_rate,
                "errors": point.errors,
                "p50_ms": point.p50_ms,
                "p99_ms": point.p99_ms,
                "warmup": point.warmup,
                "lag_p99_ms": point.lag_p99_ms,
                "lag_max_ms": point.lag_max_ms,
                "late": point.late,
            }
            for point in result.timeseries
        ],
        "minutes": [dataclasses.asdict(point) for point in result.minutes],
        "mesh_minutes": [dataclasses.asdict(point) for point in result.mesh_minutes],
        "trends": [dataclasses.asdict(trend) | {"summary": trend.describe()} for trend in result.trends],
        "records_dropped": result.records_dropped,
        "labels": dict(result.labels),
        "mesh": dataclasses.asdict(result.mesh) if result.mesh is not None else None,
        "environment": dict(result.environment),
        "plan": result.plan.model_dump(mode="json"),
        "by_name": {
            name: {
                "requests": summary.completed,
                "errors": summary.errors,
                "failures": summary.failures,
                "percentiles_ms": summary.corrected.percentiles_ms(),
                "uncorrected_percentiles_ms": summary.uncorrected.percentiles_ms(),
                "histogram": summary.corrected.encode(),
                "uncorrected_histogram": summary.uncorrected.encode(),
            }
            for name, summary in result.by_name.items()
        },
        "reference": dataclasses.asdict(result.reference) if result.reference is not None else None,
    }


def smp_document(result: RunResult) -> dict[str, Any]:
    """The whole smp.json document: config, result, mesh_config, env and the `meshload` block."""
    ids = document_ids(result)
    labels = smp_labels(result)
    plan = result.plan
    config = {
        "smp_version": SMP_VERSION,
        "id": ids["config"],
        "name": plan.name,
        "labels": dict(labels),
        "clients": _clients(result),
        "duration": go_duration(plan.duration_s),
    }
    run = {
        "smp_version": SMP_VERSION,
        "id": ids["result"],
        "labels": dict(labels),
        "start_time": rfc3339(result.started_unix_ms),
        "end_time": rfc3339(result.ended_unix_ms),
        "latencies_ms": _latencies_ms(result.corrected),
        "actual_qps": result.actual_rps,
        "details_uri": "report.html",
        "test_id": ids["config"],
        "mesh_config_id": ids["mesh_config"],
        "env_id": ids["env"],
    }
    return {
        "smp_version": SMP_VERSION,
        "config": config,
        "result": run,
        "mesh_config": _mesh_config(result, ids, labels),
        "env": _env(result, ids, labels),
        "meshload": extension_block(result),
    }
