"""What every BookInfo service shares: the testbed's admin routes and the failure switch.

The admin routes live under `/_testbed/` on the service's own port; the testbed controller calls them
directly (never through a proxy) to repoint downstream calls when the profile changes and to set a
service's behaviour (ratings' fault modes, or `failing`: every request answered 503, used to show
outlier ejection).
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable

from ..httpclient import Upstream, UpstreamClient
from ..httpserver import Request, Response
from ..topology import SERVICE_MODES

ADMIN_PREFIX = "/_testbed/"
JSON = "application/json"

# Headers productpage forwards on its calls (productpage.py getForwardHeaders).
FORWARDED_HEADERS = (
    "x-request-id",
    "x-ot-span-context",
    "x-datadog-trace-id",
    "x-datadog-parent-id",
    "x-datadog-sampling-priority",
    "traceparent",
    "tracestate",
    "x-cloud-trace-context",
    "grpc-trace-bin",
    "sw8",
    "user-agent",
    "cookie",
    "authorization",
    "jwt",
)
B3_HEADERS = ("x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags")

_UNAVAILABLE = Response(503, b'{"error":"Service unavailable"}', JSON)


def json_response(status: int, payload: object) -> Response:
    return Response(status, json.dumps(payload).encode(), JSON)


class ServiceApp:
    """Base of the four services: routes `/_testbed/` to the admin handlers, the rest to `route`."""

    service = ""
    modes: tuple[str, ...] = SERVICE_MODES

    def __init__(self, version: str, upstreams: dict[str, Upstream], fault_scale: float = 1.0) -> None:
        self.version = version
        self.client = UpstreamClient(upstreams)
        self.fault_scale = fault_scale
        self.mode = "normal"
        # Requests this instance answered (health checks and admin routes aside), so the testbed can
        # show how the callers spread a service's requests over its instances.
        self.served = 0

    @property
    def instance_name(self) -> str:
        return f"{self.service}-{self.version}"

    def handle(self, request: Request) -> Response | Awaitable[Response]:
        if request.path.startswith(ADMIN_PREFIX):
            return self._admin(request)
        if request.path != "/health":
            self.served += 1
        if self.mode == "failing":
            return _UNAVAILABLE
        return self.route(request)

    def route(self, request: Request) -> Response | Awaitable[Response]:  # pragma: no cover - overridden
        raise NotImplementedError

    def set_mode(self, mode: str) -> None:
        if mode not in self.modes:
            raise ValueError(f"{self.service} has no mode {mode!r}; modes: {', '.join(self.modes)}")
        self.mode = mode

    def _admin(self, request: Request) -> Response:
        action = request.path[len(ADMIN_PREFIX) :]
        if request.method == "GET" and action == "info":
            return json_response(200, self.info())
        if request.method != "PUT":
            return json_response(405, {"error": "use GET info or PUT upstreams|mode"})
        try:
            payload = json.loads(request.body or b"{}")
            if action == "upstreams":
                self.client.set_upstreams({name: Upstream.from_json(up) for name, up in payload.items()})
            elif action == "mode":
                self.set_mode(str(payload["mode"]))
                if "fault_scale" in payload:
                    self.fault_scale = float(payload["fault_scale"])
            else:
                return json_response(404, {"error": f"no admin action {action}"})
        except (ValueError, KeyError, TypeError) as exc:
            return json_response(400, {"error": str(exc)})
        return json_response(200, self.info())

    def info(self) -> dict:
        return {
            "service": self.service,
            "version": self.version,
            "pid": os.getpid(),
            "mode": self.mode,
            "fault_scale": self.fault_scale,
            "served": self.served,
            "upstreams": {name: up.to_json() for name, up in self.client.upstreams.items()},
        }
