"""HTTP/1.1 request bytes, built once per target when the plan is loaded.

Targets that share scheme, host and port share an `Origin` (one connection pool). The bytes of each
target's request are final: method, path, Host, headers, body and Content-Length; keep-alive is
HTTP/1.1's default, so no Connection header is sent.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

import numpy as np

from ...scenarios.plan import Plan, Target

USER_AGENT = "meshload/0.1"
#: Length of the precomputed target sequence (cycled); long enough that weights hold to ~0.1%.
TARGET_SEQUENCE_LENGTH = 4_096
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


@dataclass(frozen=True)
class Origin:
    """Where a pool's connections go."""

    host: str
    port: int
    tls: bool
    server_hostname: str | None  # TLS SNI and certificate name; None for plain HTTP
    # Some target of this origin is requested with HEAD, whose responses end with their head (the
    # connections then parse with `http_connection.HeadAwareParser`). Not part of the origin's identity.
    head_requests: bool = field(default=False, compare=False)


@dataclass(frozen=True)
class RequestTemplate:
    """One target, ready to send: its origin (index into the plan's origins) and its bytes."""

    origin_index: int
    payload: bytes


def origin_of(url: str) -> Origin:
    parts = urlsplit(url)
    tls = parts.scheme == "https"
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if tls else 80)
    return Origin(host=host, port=port, tls=tls, server_hostname=host if tls else None)


def request_method(plan: Plan, target: Target) -> str:
    return (target.method or plan.method).upper()


def request_bytes(plan: Plan, target: Target) -> bytes:
    """The complete request for one target, as written on the wire."""
    parts = urlsplit(target.url)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    method = request_method(plan, target)
    body = target.body if target.body is not None else plan.body
    headers = {"Host": parts.netloc, "User-Agent": USER_AGENT}
    for name, value in {**plan.headers, **target.headers}.items():
        headers[_canonical_name(name, headers)] = value
    body_bytes = body.encode("utf-8") if body is not None else b""
    if body_bytes or method in _BODY_METHODS:
        headers["Content-Length"] = str(len(body_bytes))
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode("latin-1") + body_bytes


def _canonical_name(name: str, existing: dict[str, str]) -> str:
    """The spelling already present for a header name (case-insensitive), so a user header replaces it."""
    for present in existing:
        if present.lower() == name.lower():
            return present
    return name


def build_templates(plan: Plan) -> tuple[list[Origin], list[RequestTemplate]]:
    """The plan's distinct origins and one template per target (in the plan's order)."""
    origins: list[Origin] = []
    templates: list[RequestTemplate] = []
    head_origins: set[int] = set()
    for target in plan.targets:
        origin = origin_of(target.url)
        if origin not in origins:
            origins.append(origin)
        index = origins.index(origin)
        if request_method(plan, target) == "HEAD":
            head_origins.add(index)
        templates.append(RequestTemplate(index, request_bytes(plan, target)))
    origins = [replace(origin, head_requests=index in head_origins) for index, origin in enumerate(origins)]
    return origins, templates


def target_sequence(plan: Plan, worker_index: int) -> list[int]:
    """Target indexes in sending order: drawn by weight, seeded, precomputed, cycled by the engine."""
    if len(plan.targets) == 1:
        return [0]
    weights = np.asarray([t.weight for t in plan.targets], dtype=np.float64)
    rng = np.random.default_rng([plan.seed, worker_index, 7])
    return rng.choice(len(weights), size=TARGET_SEQUENCE_LENGTH, p=weights / weights.sum()).tolist()


def client_ssl_context(verify: bool, ca_pem: str = "") -> ssl.SSLContext:
    """TLS for https targets: the system's CAs plus `ca_pem`; `verify=False` accepts any certificate
    (self-signed test meshes)."""
    context = ssl.create_default_context()
    if ca_pem:
        context.load_verify_locations(cadata=ca_pem)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
