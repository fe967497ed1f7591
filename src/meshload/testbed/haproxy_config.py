"""HAProxy configurations for the proxies of each topology, one function at a time.

A service proxy (a sidecar, or a node proxy fronting several instances) has an inbound frontend in
front of each of its apps and an outbound frontend for the apps' calls, routed by the Host header to
one backend per called service. The ingress gateway routes BookInfo's public paths to productpage and
gRPC calls to the ratings-grpc replicas, through their proxies or (ingress-only) straight to them.
A function changes only the pieces it is about:

    mtls             TLS with client certificates on every proxy-to-proxy (and ingress) hop
    retries/timeout  the callers' backends for the service (outbound, as Envoy does it)
    circuit-breaker  per-instance connection limits, a pending limit, layer-7 ejection
    rate-limit       the service's inbound frontend (the gateway's, in ingress-only)
    fault-*          the callers' backends for the service
    lb-*             the balance algorithm of the callers' backends
    access-log       one log line per request on stdout (the process's log file)
    traffic-split    server weights on the callers' backend for the service's versions
    grpc-l4/-l7      the gRPC route: TCP (a replica per connection) or HTTP/2 (a replica per request)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .profiles import ALL_SERVICES
from .topology import (
    GRPC_SERVICE,
    INGRESS_NAME,
    INGRESS_ONLY,
    SIDECAR,
    Instance,
    Ports,
    ProxyPlace,
    instances_of,
)

DELAY_ACTION = "testbed_delay"
LUA_DELAY = f"""-- fault-delay: sleep for the configured milliseconds without blocking other streams
core.register_action("{DELAY_ACTION}", {{ "http-req" }}, function(txn, delay_ms)
    core.msleep(tonumber(delay_ms))
end, 1)
"""
HAPROXY_MAX_WEIGHT = 256  # server weights go from 0 to 256

_BALANCE = {"lb-round-robin": "roundrobin", "lb-least-request": "leastconn", "lb-random": "random"}
_GRPC_BALANCE = {"round-robin": "roundrobin", "least-request": "leastconn", "random": "random"}
_JSON_LOG = (
    '{\\"time\\":\\"%tr\\",\\"proxy\\":\\"%f\\",\\"backend\\":\\"%b\\",\\"server\\":\\"%s\\",'
    '\\"method\\":\\"%HM\\",\\"path\\":\\"%HU\\",\\"status\\":%ST,\\"bytes\\":%B,\\"duration_ms\\":%Ta,'
    '\\"request_id\\":\\"%[capture.req.hdr(0)]\\",\\"end_user\\":\\"%[capture.req.hdr(1)]\\"}'
)


@dataclass(frozen=True)
class Identity:
    """A workload's certificate (PEM with key) and the CA every proxy trusts."""

    crt_pem: Path
    ca_pem: Path


@dataclass(frozen=True)
class MeshSetting:
    """Everything a configuration depends on besides the proxy itself."""

    ports: Ports
    function: str
    params: dict[str, str]
    lua_path: Path
    identities: dict[str, Identity]  # by service name, node name, plus INGRESS_NAME
    topology: str = SIDECAR

    @property
    def mtls(self) -> bool:
        return self.function == "mtls"

    @property
    def grpc_tcp(self) -> bool:
        """Whether the gRPC route is layer 4 (connections balanced) rather than HTTP/2."""
        return self.function == "grpc-l4"

    def targets(self, service: str) -> bool:
        """Whether the function's `service` parameter selects `service`."""
        chosen = self.params.get("service")
        return chosen is not None and chosen in (service, ALL_SERVICES)

    def upstream_port(self, instance: Instance) -> int:
        """Where a proxy sends a call for `instance`: its inbound proxy port, or in ingress-only
        (no proxy in front of it) the instance's own port."""
        ports = self.ports.instances[instance.name]
        if self.topology == INGRESS_ONLY:
            return ports.grpc if instance.grpc else ports.app
        return ports.inbound


def _global(setting: MeshSetting, stats_socket: str) -> list[str]:
    lines = [
        "global",
        "    nbthread 1",
        "    maxconn 4000",
        f"    stats socket {stats_socket} mode 600 level admin",
        "    hard-stop-after 5s",
    ]
    if setting.function == "fault-delay":
        lines.append(f"    lua-load {setting.lua_path}")
    if setting.function == "access-log":
        lines.append("    log stdout format raw local0 info")
    if setting.mtls:
        version = setting.params.get("min_tls_version", "TLSv1.2")
        lines.append(f"    ssl-default-bind-options ssl-min-ver {version}")
        lines.append(f"    ssl-default-server-options ssl-min-ver {version}")
    lines += [
        "",
        "defaults",
        "    mode http",
        "    timeout connect 10s",
        "    timeout client 5m",
        "    timeout server 5m",
        "    timeout http-request 30s",
        "    timeout http-keep-alive 5m",
        "    timeout queue 10s",
        "    http-reuse always",
    ]
    if setting.function == "access-log":
        lines.append("    log global")
        if setting.params.get("format") == "json":
            lines.append(f'    log-format "{_JSON_LOG}"')
        else:
            lines.append("    option httplog")
    lines.append("")
    return lines


# The proxies after it carry gRPC as plain TCP (grpc-l4); HTTP settings would only draw warnings.
_TCP_DEFAULTS = [
    "defaults",
    "    mode tcp",
    "    timeout connect 10s",
    "    timeout client 5m",
    "    timeout server 5m",
    "",
]


def _log_captures(setting: MeshSetting) -> list[str]:
    if setting.function != "access-log":
        return []
    # Header propagation is visible in the logs: the same x-request-id at every hop of one request.
    return [
        "    http-request capture req.hdr(x-request-id) len 64",
        "    http-request capture req.hdr(end-user) len 32",
    ]


def _rate_limit(setting: MeshSetting, service: str) -> list[str]:
    if setting.function != "rate-limit" or not setting.targets(service):
        return []
    limit = setting.params["limit_rps"]
    # Only admitted requests are counted, so a flood still lets `limit` per second through.
    return [
        "    stick-table type integer size 1 expire 10s store gpc0_rate(1s)",
        "    http-request track-sc0 int(1)",
        f"    http-request deny deny_status 429 hdr x-local-rate-limit true if {{ sc_gpc0_rate(0) ge {limit} }}",
        "    http-request sc-inc-gpc0(0)",
    ]


def _server_tls(setting: MeshSetting, own: str, peer_service: str, alpn: str = "http/1.1") -> str:
    if not setting.mtls:
        return ""
    identity = setting.identities[own]
    return (
        f" ssl crt {identity.crt_pem} ca-file {identity.ca_pem} verify required"
        f" verifyhost {peer_service} sni str({peer_service}) alpn {alpn}"
    )


def _bind_tls(setting: MeshSetting, service: str, alpn: str = "http/1.1") -> str:
    if not setting.mtls:
        return ""
    identity = setting.identities[service]
    return f" ssl crt {identity.crt_pem} ca-file {identity.ca_pem} verify required alpn {alpn}"


def _weights(setting: MeshSetting, service: str) -> dict[str, int]:
    """traffic-split's server weights by instance, scaled into HAProxy's 0..256 (a non-zero weight
    stays at least 1, so a version asked for keeps some traffic)."""
    if setting.function != "traffic-split" or not setting.targets(service):
        return {}
    asked = [int(weight) for weight in setting.params["weights"].split(",")]
    top = max(asked)
    scale = min(1.0, HAPROXY_MAX_WEIGHT / top)
    scaled = [max(1, round(weight * scale)) if weight else 0 for weight in asked]
    return {instance.name: weight for instance, weight in zip(instances_of(service), scaled, strict=True)}


def _balance(setting: MeshSetting, service: str) -> str:
    if setting.targets(service) and setting.function in _BALANCE:
        return _BALANCE[setting.function]
    return "roundrobin"


def _outbound_backend(setting: MeshSetting, own: str, service: str) -> list[str]:
    """The caller-side backend for `service` (in a service proxy, or the ingress for productpage)."""
    function, params = setting.function, setting.params
    targeted = setting.targets(service)
    lines = [f"backend to_{service}", f"    balance {_balance(setting, service)}"]
    server_options = ""
    if targeted and function == "timeout":
        lines.append(f"    timeout server {params['timeout_ms']}ms")
    if targeted and function == "retries":
        lines.append(f"    retries {params['attempts']}")
        lines.append(f"    retry-on {params['retry_on'].replace(',', ' ')}")
        lines.append("    option redispatch 1")
        if int(params["per_try_timeout_ms"]) > 0:
            lines.append(f"    timeout server {params['per_try_timeout_ms']}ms")
    if targeted and function in ("fault-delay", "fault-abort"):
        threshold = round(float(params["percent"]) * 100)  # rand(10000) < threshold
        condition = f"{{ rand(10000) lt {threshold} }}"
        if params["end_user"]:
            condition += f" {{ req.hdr(end-user) -m str {params['end_user']} }}"
        if function == "fault-delay":
            lines.append(f"    http-request lua.{DELAY_ACTION} {params['delay_ms']} if {condition}")
        else:
            lines.append(
                f"    http-request return status {params['status']} content-type text/plain"
                f' string "fault filter abort" if {condition}'
            )
    if targeted and function == "circuit-breaker":
        lines += [
            # overflow is answered at once, as Envoy's pending-requests limit does
            (
                '    http-request return status 503 content-type text/plain string "upstream overflow"'
                f" hdr x-envoy-overloaded true if {{ queue() ge {params['max_pending']} }}"
            ),
            "    timeout queue 1s",
            "    option httpchk GET /health",
            f"    http-check send hdr host {service}",
        ]
        ejection_s = float(params["ejection_s"])
        server_options = (
            f" maxconn {params['max_connections']} check inter 2s downinter {ejection_s:g}s rise 1 fall 3"
            f" observe layer7 error-limit {params['consecutive_errors']} on-error mark-down"
        )
    weights = _weights(setting, service)
    for instance in instances_of(service):
        weight = f" weight {weights[instance.name]}" if weights else ""
        lines.append(
            f"    server {instance.name} 127.0.0.1:{setting.upstream_port(instance)}{weight}{server_options}"
            f"{_server_tls(setting, own, service)}"
        )
    lines.append("")
    return lines


def _http_inbound(setting: MeshSetting, instance: Instance, frontend: str) -> list[str]:
    ports = setting.ports.instances[instance.name]
    lines = [f"frontend {frontend}", f"    bind 127.0.0.1:{ports.inbound}{_bind_tls(setting, instance.service)}"]
    lines += _log_captures(setting)
    lines += _rate_limit(setting, instance.service)
    return [
        *lines,
        f"    default_backend local_{instance.name}",
        "",
        f"backend local_{instance.name}",
        f"    server app 127.0.0.1:{ports.app}",
        "",
    ]


def _grpc_inbound(setting: MeshSetting, instance: Instance, frontend: str) -> list[str]:
    ports = setting.ports.instances[instance.name]
    if setting.grpc_tcp:
        bind, server = f"127.0.0.1:{ports.inbound}", f"127.0.0.1:{ports.grpc}"
        captures: list[str] = []
    else:
        tls = _bind_tls(setting, instance.service, alpn="h2")
        bind = f"127.0.0.1:{ports.inbound}{tls}" if tls else f"127.0.0.1:{ports.inbound} proto h2"
        server = f"127.0.0.1:{ports.grpc} proto h2"
        captures = _log_captures(setting)
    return [
        f"frontend {frontend}",
        f"    bind {bind}",
        *captures,
        f"    default_backend local_{instance.name}",
        "",
        f"backend local_{instance.name}",
        f"    server app {server}",
        "",
    ]


def _grpc_route(setting: MeshSetting) -> list[str]:
    """The gateway's gRPC frontend and its backend over the replicas."""
    policy = setting.params.get("lb", "round-robin") if setting.function.startswith("grpc-") else ""
    balance = _GRPC_BALANCE[policy] if policy else _balance(setting, GRPC_SERVICE)
    servers = []
    for instance in instances_of(GRPC_SERVICE):
        address = f"127.0.0.1:{setting.upstream_port(instance)}"
        if setting.grpc_tcp:
            servers.append(f"    server {instance.name} {address}")
            continue
        tls = _server_tls(setting, INGRESS_NAME, GRPC_SERVICE, alpn="h2")
        servers.append(f"    server {instance.name} {address} proto h2{tls}")
    bind = f"127.0.0.1:{setting.ports.ingress_grpc}" + ("" if setting.grpc_tcp else " proto h2")
    return [
        "frontend grpc",
        f"    bind {bind}",
        *([] if setting.grpc_tcp else _log_captures(setting)),
        f"    default_backend to_{GRPC_SERVICE}",
        "",
        f"backend to_{GRPC_SERVICE}",
        f"    balance {balance}",
        *servers,
        "",
    ]


def _service_proxy(place: ProxyPlace, setting: MeshSetting) -> tuple[list[str], list[str]]:
    """A sidecar's or node proxy's sections: (HTTP ones, gRPC ones)."""
    http: list[str] = []
    grpc: list[str] = []
    for instance in place.instances:
        frontend = "inbound" if place.kind == "sidecar" else f"inbound-{instance.name}"
        if instance.grpc:
            grpc += _grpc_inbound(setting, instance, frontend)
        else:
            http += _http_inbound(setting, instance, frontend)
    calls = place.calls
    if calls:
        own = setting.ports.instances[place.instances[0].name]
        port = setting.ports.nodes[place.node] if place.node else own.outbound
        http += ["frontend outbound", f"    bind 127.0.0.1:{port}"]
        http += _log_captures(setting)
        for service in calls:
            http.append(f"    use_backend to_{service} if {{ req.hdr(host),field(1,:) -m str {service} }}")
        http += ["    default_backend no_route", ""]
        for service in calls:
            http += _outbound_backend(setting, place.identity, service)
        http += [
            "backend no_route",
            '    http-request return status 404 content-type text/plain string "no route"',
            "",
        ]
    return http, grpc


# The paths bookinfo-gateway.yaml routes to productpage; `/` and `/health` are not exposed.
_GATEWAY_EXACT = ("/productpage", "/login", "/logout")
_GATEWAY_PREFIX = ("/static", "/api/v1/products")


def _ingress(setting: MeshSetting) -> list[str]:
    lines = [
        "frontend gateway",
        f"    bind 127.0.0.1:{setting.ports.ingress}",
        "    http-request set-header x-request-id %[uuid()] unless { req.hdr(x-request-id) -m found }",
    ]
    lines += _log_captures(setting)
    lines += [
        f"    acl bookinfo path {' '.join(_GATEWAY_EXACT)}",
        f"    acl bookinfo path_beg {' '.join(_GATEWAY_PREFIX)}",
        '    http-request return status 404 content-type text/plain string "no route" unless bookinfo',
    ]
    if setting.topology == INGRESS_ONLY:
        lines += _rate_limit(setting, "productpage")  # productpage has no proxy of its own there
    lines += ["    default_backend to_productpage", ""]
    return lines + _outbound_backend(setting, INGRESS_NAME, "productpage")


def proxy_config(place: ProxyPlace, setting: MeshSetting, stats_socket: str) -> str:
    """The configuration of one proxy process of the topology in `setting`."""
    if place.kind == "ingress":
        http, grpc = _ingress(setting), _grpc_route(setting)
    else:
        http, grpc = _service_proxy(place, setting)
    lines = _global(setting, stats_socket) + http
    if grpc:
        lines += (_TCP_DEFAULTS if setting.grpc_tcp else []) + grpc
    return "\n".join(lines) + "\n"
