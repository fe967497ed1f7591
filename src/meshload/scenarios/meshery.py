"""Meshery / SMP performance test files (`{test: PerformanceTestConfig, mesh: ...}`) read as plans.

Both generations of the file are accepted: SMP's snake_case keys with integer enums
(`endpoint_urls`, `protocol: 1`, `mesh: {type: 3}`) and newer Meshery's camelCase keys with
string values (`endpointUrls`, `protocol: "http"`, `mesh: "istio"`).

How SMP's fields become a plan (SMP spec v0.6.1, `PerformanceTestConfig.Client`):

- every client's `endpoint_urls` become targets; a client's share of the traffic is its `rps`,
  split evenly over its URLs (Meshery itself reads only the first client's first URL);
- `rps` summed over clients is the open-loop rate; `rps: 0` on every client means "as fast as
  possible", as in Fortio (`qps <= 0`), which is a closed loop of `connections` clients;
- `headers`, `cookies`, `body` and `content_type` go onto that client's targets; a body makes the
  request a POST, as Fortio's `-payload` does;
- `duration` is a Go duration ("30m"); `labels`, `id` and the mesh go into the plan's labels.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .file_format import Seconds, Text
from .source import SourceDocument
from .validation import plan_error_from

# Fortio's default `-c`: the clients of a max-speed run when a file gives no connections.
FORTIO_DEFAULT_CONNECTIONS = 4
# SMP `ServiceMesh.Type` (protos/service_mesh.proto).
MESH_TYPE_NAMES = {
    0: "invalid",
    1: "app_mesh",
    2: "consul",
    3: "istio",
    4: "kuma",
    5: "linkerd",
    6: "traefik_mesh",
    7: "octarine",
    8: "network_service_mesh",
    9: "tanzu",
    10: "open_service_mesh",
    11: "nginx_service_mesh",
    12: "cilium_service_mesh",
}
_HTTP_PROTOCOLS = (1, "1", "http", "HTTP", "PROTOCOL_HTTP")
_CAMEL_CASE_FIELDS = {
    "smpVersion": "smp_version",
    "loadGenerator": "load_generator",
    "contentType": "content_type",
    "endpointUrls": "endpoint_urls",
    "sslCertificate": "ssl_certificate",
    "additionalOptions": "additional_options",
}


class _SmpModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SmpClient(_SmpModel):
    """`PerformanceTestConfig.Client`: one load generator."""

    internal: bool = False
    load_generator: str = ""
    protocol: int | str = 1
    connections: int = Field(0, ge=0)
    rps: float = Field(0, ge=0)
    headers: dict[str, Text] = {}
    cookies: dict[str, Text] = {}
    body: str = ""
    content_type: str = ""
    endpoint_urls: list[str] = Field(min_length=1)
    ssl_certificate: str = ""
    additional_options: str = ""


class SmpTest(_SmpModel):
    """`PerformanceTestConfig`."""

    smp_version: str = ""
    id: str = ""
    name: str = ""
    labels: dict[str, Text] = {}
    clients: list[SmpClient] = Field(min_length=1)
    duration: Seconds = Field(gt=0)


class SmpServiceMesh(_SmpModel):
    """`ServiceMesh`: the mesh under test."""

    type: int = 0
    version: str = ""
    labels: dict[str, Text] = {}
    annotations: dict[str, Text] = {}


class SmpTestFile(_SmpModel):
    """The whole file: the test and, optionally, the mesh (a `ServiceMesh` or a model name)."""

    test: SmpTest
    mesh: SmpServiceMesh | str | int | None = None


def is_meshery_test(data: Any) -> bool:
    """Whether parsed file data has the Meshery test-file shape rather than a meshload plan's."""
    return isinstance(data, dict) and isinstance(data.get("test"), dict)


def plan_document(document: SourceDocument, *, default_name: str) -> dict[str, Any]:
    """The meshload plan-file data equivalent to a Meshery test file; bad fields raise PlanError."""
    document = document.with_keys(_snake_case)
    try:
        smp = SmpTestFile.model_validate(document.data)
    except ValidationError as exc:
        raise plan_error_from(exc, document, SmpTestFile) from exc
    test = smp.test
    for index, client in enumerate(test.clients):
        _check_client(client, ("test", "clients", index), document)
    open_loop = any(client.rps > 0 for client in test.clients)
    if open_loop:
        for index, client in enumerate(test.clients):
            if client.rps == 0:
                raise document.error(
                    ("test", "clients", index, "rps"),
                    "is 0 (as fast as possible) while other clients give a rate; give every client an rps",
                )
    targets = [target for client in test.clients for target in _targets_of(client, open_loop=open_loop)]
    connections = sum(client.connections for client in test.clients)
    if open_loop:
        load: dict[str, Any] = {"rate": sum(client.rps for client in test.clients)}
    else:
        load = {"concurrency": connections or FORTIO_DEFAULT_CONNECTIONS}
    plan: dict[str, Any] = {
        "name": test.name or default_name,
        "targets": targets,
        "load": load,
        "duration": test.duration,
        "labels": {**test.labels, **_mesh_labels(smp.mesh), **({"smp.test_id": test.id} if test.id else {})},
    }
    if open_loop and connections:
        plan["max_connections"] = max(client.connections for client in test.clients)
    return plan


def _targets_of(client: SmpClient, *, open_loop: bool) -> list[dict[str, Any]]:
    """One plan target per endpoint of a Meshery client (open loop: the client's rate split evenly)."""
    headers = dict(client.headers)
    if client.content_type:
        headers["Content-Type"] = client.content_type
    if client.cookies:
        headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
    targets = []
    for url in client.endpoint_urls:
        target: dict[str, Any] = {"url": url, "headers": headers}
        if open_loop:
            target["weight"] = client.rps / len(client.endpoint_urls)
        if client.body:
            target.update(method="POST", body=client.body)
        targets.append(target)
    return targets


def _check_client(client: SmpClient, where: tuple, document: SourceDocument) -> None:
    if client.protocol not in _HTTP_PROTOCOLS:
        raise document.error(
            (*where, "protocol"), f"{client.protocol!r} is not HTTP; only HTTP (protocol: 1) is supported"
        )
    for index, url in enumerate(client.endpoint_urls):
        if not url.startswith(("http://", "https://")):
            raise document.error(
                (*where, "endpoint_urls", index), f"{url!r} is not an absolute http:// or https:// URL"
            )
    if client.ssl_certificate:
        raise document.error(
            (*where, "ssl_certificate"),
            "custom CA certificates are not supported; remove it (set tls_verify: false in a meshload plan instead)",
        )
    if client.additional_options:
        raise document.error(
            (*where, "additional_options"), "holds Fortio runner options, which meshload cannot apply; remove it"
        )


def _mesh_labels(mesh: SmpServiceMesh | str | int | None) -> dict[str, str]:
    if mesh is None:
        return {}
    if isinstance(mesh, str):
        return {"mesh": mesh}
    if isinstance(mesh, int):
        return {"mesh": MESH_TYPE_NAMES.get(mesh, str(mesh))}
    labels = {"mesh": MESH_TYPE_NAMES.get(mesh.type, str(mesh.type))}
    if mesh.version:
        labels["mesh.version"] = mesh.version
    return labels


def _snake_case(key: str) -> str:
    """Newer Meshery's camelCase keys (`endpointUrls`) as SMP's snake_case (`endpoint_urls`).

    Only the known field names are renamed, so user-chosen header and label names stay as written."""
    return _CAMEL_CASE_FIELDS.get(key, key)
