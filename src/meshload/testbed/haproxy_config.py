"""HAProxy configurations for the sidecars and the ingress gateway, one function at a time.

A sidecar has an inbound frontend in front of its app and an outbound frontend for the app's calls,
routed by the Host header to one backend per called service. The ingress gateway routes BookInfo's
public paths to productpage's sidecar. A function changes only the pieces it is about:

    mtls             TLS with client certificates on every sidecar-to-sidecar (and ingress) hop
    retries/timeout  the callers' backends for the service (outbound, as Envoy does it)
    circuit-breaker  per-instance connection limits, a pending limit, layer-7 ejection
    rate-limit       the service's inbound frontend
    fault-*          the callers' backends for the service
    lb-*             the balance algorithm of the callers' backends
    access-log       one log line per request on stdout (the process's log file)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .profiles import ALL_SERVICES
from .topology import INGRESS_NAME, Instance, Ports, instances_of

DELAY_ACTION = "testbed_delay"
LUA_DELAY = f"""-- fault-delay: sleep for the configured milliseconds without blocking other streams
core.register_action("{DELAY_ACTION}", {{ "http-req" }}, function(txn, delay_ms)
    core.msleep(tonumber(delay_ms))
end, 1)
"""

_BALANCE = {"lb-round-robin": "roundrobin", "lb-least-request": "leastconn", "lb-random": "random"}
_JSON_LOG = (
    '{\\"time\\":\\"%tr\\",\\"proxy\\":\\"%f\\",\\"backend\\":\\"%b\\",\\"server\\":\\"%s\\",'
    '\\"method\\":\\"%HM\\",\\"path\\":\\"%HU\\",\\"status\\":%ST,\\"bytes\\":%B,\\"duration_ms\\":%Ta,'
    '\\"request_id\\":\\"%[capture.req.hdr(0)]\\",\\"end_user\\":\\"%[capture.req.hdr(1)]\\"}'
)


@dataclass(frozen=True)
class Identity:
    """A workload's certificate (PEM with key) and the CA every sidecar trusts."""

    crt_pem: Path
    ca_pem: Path


@dataclass(frozen=True)
class MeshSetting:
    """Everything a configuration depends on besides the instance itself."""

    ports: Ports
    function: str
    params: dict[str, str]
    lua_path: Path
    identities: dict[str, Identity]  # by service name, plus INGRESS_NAME

    @property
    def mtls(self) -> bool:
        return self.function == "mtls"

    def targets(self, service: str) -> bool:
        """Whether the function's `service` parameter selects `service`."""
        chosen = self.params.get("service")
        return chosen is not None and chosen in (service, ALL_SERVICES)


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


def _log_captures(setting: MeshSetting) -> list[str]:
    if setting.function != "access-log":
        return []
    # Header propagation is visible in the logs: the same x-request-id at every hop of one request.
    return [
        "    http-request capture req.hdr(x-request-id) len 64",
        "    http-request capture req.hdr(end-user) len 32",
    ]


def _server_tls(setting: MeshSetting, own: str, peer_service: str) -> str:
    if not setting.mtls:
        return ""
    identity = setting.identities[own]
    return (
        f" ssl crt {identity.crt_pem} ca-file {identity.ca_pem} verify required"
        f" verifyhost {peer_service} sni str({peer_service}) alpn http/1.1"
    )


def _outbound_backend(setting: MeshSetting, own: str, service: str) -> list[str]:
    """The caller-side backend for `service` (in a sidecar, or the ingress for productpage)."""
    function, params = setting.function, setting.params
    targeted = setting.targets(service)
    lines = [f"backend to_{service}"]
    balance = _BALANCE[function] if targeted and function in _BALANCE else "roundrobin"
    lines.append(f"    balance {balance}")
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
    for instance in instances_of(service):
        inbound = setting.ports.instances[instance.name].inbound
        lines.append(
            f"    server {instance.name} 127.0.0.1:{inbound}{server_options}{_server_tls(setting, own, service)}"
        )
    lines.append("")
    return lines


def sidecar_config(instance: Instance, setting: MeshSetting, stats_socket: str) -> str:
    ports = setting.ports.instances[instance.name]
    lines = _global(setting, stats_socket)
    bind_tls = ""
    if setting.mtls:
        identity = setting.identities[instance.service]
        bind_tls = f" ssl crt {identity.crt_pem} ca-file {identity.ca_pem} verify required alpn http/1.1"
    lines += ["frontend inbound", f"    bind 127.0.0.1:{ports.inbound}{bind_tls}"]
    lines += _log_captures(setting)
    if setting.function == "rate-limit" and setting.targets(instance.service):
        limit = setting.params["limit_rps"]
        # Only admitted requests are counted, so a flood still lets `limit` per second through.
        lines += [
            "    stick-table type integer size 1 expire 10s store gpc0_rate(1s)",
            "    http-request track-sc0 int(1)",
            f"    http-request deny deny_status 429 hdr x-local-rate-limit true if {{ sc_gpc0_rate(0) ge {limit} }}",
            "    http-request sc-inc-gpc0(0)",
        ]
    lines += [
        "    default_backend local_app",
        "",
        "backend local_app",
        f"    server app 127.0.0.1:{ports.app}",
        "",
    ]
    if instance.calls:
        lines += ["frontend outbound", f"    bind 127.0.0.1:{ports.outbound}"]
        lines += _log_captures(setting)
        for service in instance.calls:
            lines.append(f"    use_backend to_{service} if {{ req.hdr(host),field(1,:) -m str {service} }}")
        lines += ["    default_backend no_route", ""]
        for service in instance.calls:
            lines += _outbound_backend(setting, instance.service, service)
        lines += [
            "backend no_route",
            '    http-request return status 404 content-type text/plain string "no route"',
            "",
        ]
    return "\n".join(lines) + "\n"


# The paths bookinfo-gateway.yaml routes to productpage; `/` and `/health` are not exposed.
_GATEWAY_EXACT = ("/productpage", "/login", "/logout")
_GATEWAY_PREFIX = ("/static", "/api/v1/products")


def ingress_config(setting: MeshSetting, stats_socket: str) -> str:
    lines = _global(setting, stats_socket)
    lines += [
        "frontend gateway",
        f"    bind 127.0.0.1:{setting.ports.ingress}",
        "    http-request set-header x-request-id %[uuid()] unless { req.hdr(x-request-id) -m found }",
    ]
    lines += _log_captures(setting)
    lines += [
        f"    acl bookinfo path {' '.join(_GATEWAY_EXACT)}",
        f"    acl bookinfo path_beg {' '.join(_GATEWAY_PREFIX)}",
        '    http-request return status 404 content-type text/plain string "no route" unless bookinfo',
        "    default_backend to_productpage",
        "",
    ]
    lines += _outbound_backend(setting, INGRESS_NAME, "productpage")
    return "\n".join(lines) + "\n"
