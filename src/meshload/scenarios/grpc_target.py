"""gRPC target URLs: `grpc://host:port/package.Service/Method` (plaintext HTTP/2) and `grpcs://...` (TLS).

The path names the method the way gRPC writes it on the wire (`/package.Service/Method`), so the URL
alone says where every call goes; the request message comes from the plan's body (JSON).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

GRPC_SCHEMES = ("grpc", "grpcs")
HTTP_SCHEMES = ("http", "https")
_EXAMPLE = "grpc://127.0.0.1:9090/package.Service/Method"


@dataclass(frozen=True)
class GrpcTarget:
    """Where one gRPC target's calls go."""

    host: str
    port: int
    tls: bool
    service: str  # fully qualified: "package.Service"
    method: str  # "Method"

    @property
    def path(self) -> str:
        """The method as gRPC names it on the wire: "/package.Service/Method"."""
        return f"/{self.service}/{self.method}"

    @property
    def address(self) -> str:
        """`host:port` as gRPC channels take it (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def is_grpc_url(url: str) -> bool:
    return url.startswith(("grpc://", "grpcs://"))


def parse_grpc_url(url: str) -> GrpcTarget:
    """The target a gRPC URL names; a URL that names no method raises ValueError saying what to write."""
    parts = urlsplit(url)
    if parts.scheme not in GRPC_SCHEMES:
        raise ValueError(f"{url!r} is not a grpc:// or grpcs:// URL; write e.g. {_EXAMPLE}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{url!r} has an invalid port; write e.g. {_EXAMPLE}") from None
    if not parts.hostname:
        raise ValueError(f"{url!r} names no host; write e.g. {_EXAMPLE}")
    service, slash, method = parts.path.strip("/").rpartition("/")
    if not slash or not service or not method or "/" in service or parts.query or parts.fragment:
        raise ValueError(f"{url!r} does not name a method as /package.Service/Method; write e.g. {_EXAMPLE}")
    tls = parts.scheme == "grpcs"
    return GrpcTarget(host=parts.hostname, port=port or (443 if tls else 80), tls=tls, service=service, method=method)
