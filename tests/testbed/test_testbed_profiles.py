"""Function profiles: parameters are checked, and every profile's configuration is valid HAProxy."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest

from meshload.testbed import PROFILES, TestbedFailure, parse_settings, profile_named
from meshload.testbed.certs import ensure_identities
from meshload.testbed.haproxy_config import LUA_DELAY, MeshSetting, proxy_config
from meshload.testbed.topology import (
    ALL_INSTANCES,
    GRPC_SERVICE,
    INGRESS_NAME,
    INGRESS_ONLY,
    NODES,
    SERVICES,
    TOPOLOGIES,
    InstancePorts,
    Ports,
    proxy_places,
)

EVERY_FUNCTION = [
    "none",
    "sidecar",
    "mtls",
    "retries",
    "timeout",
    "circuit-breaker",
    "rate-limit",
    "fault-delay",
    "fault-abort",
    "lb-round-robin",
    "lb-least-request",
    "lb-random",
    "access-log",
    "traffic-split",
    "grpc-l4",
    "grpc-l7",
]


def test_every_function_of_the_issue_has_a_profile_with_a_description():
    assert list(PROFILES) == EVERY_FUNCTION
    assert all(profile.description for profile in PROFILES.values())
    assert [name for name, profile in PROFILES.items() if not profile.proxies] == ["none"]


def test_parameters_are_defaulted_overridden_and_checked():
    breaker = profile_named("circuit-breaker")
    assert breaker.resolve(None) == {
        "service": "reviews",
        "max_connections": "32",
        "max_pending": "16",
        "consecutive_errors": "5",
        "ejection_s": "30",
    }
    from_yaml: dict[str, Any] = {"max_connections": 1}  # a number, as a plan file gives it
    assert breaker.resolve(from_yaml)["max_connections"] == "1"
    with pytest.raises(
        TestbedFailure,
        match=r"circuit-breaker has no parameter 'max_conn' \(parameters: consecutive_errors, ",
    ):
        breaker.resolve({"max_conn": "1"})
    with pytest.raises(TestbedFailure, match=r"max_pending='lots': expected a whole number"):
        breaker.resolve({"max_pending": "lots"})
    with pytest.raises(TestbedFailure, match=r"percent='150': must be at most 100"):
        profile_named("fault-abort").resolve({"percent": "150"})
    with pytest.raises(
        TestbedFailure, match=r"service='frontend': choose one of productpage, details, reviews, ratings$"
    ):
        profile_named("timeout").resolve({"service": "frontend"})
    assert profile_named("retries").resolve({"service": "all"})["service"] == "all"
    with pytest.raises(TestbedFailure, match=r"unknown testbed function 'istio'"):
        profile_named("istio")
    assert parse_settings(["timeout_ms=250", " service = ratings "]) == {
        "timeout_ms": "250",
        "service": "ratings",
    }
    with pytest.raises(TestbedFailure, match=r"expected key=value"):
        parse_settings(["timeout_ms"])


def test_traffic_split_weights_are_checked():
    split = profile_named("traffic-split")
    assert split.resolve(None) == {"service": "reviews", "weights": "80,10,10"}
    assert split.resolve({"weights": " 0, 1,1000000"})["weights"] == "0,1,1000000"
    for weights, message in (
        ("80,20", r"expected 3 whole numbers, one per version \(v1,v2,v3\), e.g. weights=1,1,1$"),
        ("80,-10,30", r"expected 3 whole numbers"),
        ("a,b,c", r"expected 3 whole numbers"),
        ("0,0,0", r"at least one weight must be above 0"),
        ("1,1,1000001", r"each weight must be at most 1000000"),
    ):
        with pytest.raises(TestbedFailure, match=rf"^traffic-split parameter weights='{weights}': {message}"):
            split.resolve({"weights": weights})
    with pytest.raises(TestbedFailure, match=r"service='details': choose one of reviews$"):
        split.resolve({"service": "details"})


def test_profiles_refuse_topologies_they_have_no_meaning_in():
    timeout = profile_named("timeout")
    assert timeout.refusal("sidecar", timeout.resolve(None)) is None
    assert timeout.refusal(INGRESS_ONLY, timeout.resolve({"service": "productpage"})) is None
    refusal = timeout.refusal(INGRESS_ONLY, timeout.resolve(None))
    assert refusal is not None and "\n" not in refusal
    assert refusal.startswith("timeout on reviews does not apply in the ingress-only topology")
    assert refusal.endswith("use --set service=productpage, or another topology")
    retries = profile_named("retries")
    assert retries.refusal(INGRESS_ONLY, retries.resolve(None)) is None  # service=all: the gateway's route
    for name in ("mtls", "traffic-split", "lb-random"):
        profile = profile_named(name)
        assert profile.refusal("per-node", profile.resolve(None)) is None
        assert profile.refusal(INGRESS_ONLY, profile.resolve(None)) == (
            f"{name} does not apply in the ingress-only topology: {profile.not_in[INGRESS_ONLY]}"
        )


@pytest.fixture(scope="module")
def identities(tmp_path_factory):
    return ensure_identities(tmp_path_factory.mktemp("certs"), [*SERVICES, GRPC_SERVICE, *NODES, INGRESS_NAME])


_OVERRIDES = {
    "fault-abort": {"service": "details", "end_user": ""},
    "lb-random": {"service": "reviews"},
    "traffic-split": {"weights": "0,600,200"},  # above HAProxy's 256: scaled, zero kept
}


def _cases() -> list[tuple[str, str]]:
    return [
        (function, topology)
        for topology in TOPOLOGIES
        for function in EVERY_FUNCTION
        if function != "none" and topology not in profile_named(function).not_in
    ]


def _configs(function: str, topology: str, identities, tmp_path) -> dict[str, str]:
    ports = Ports(
        instances={
            i.name: InstancePorts(20000 + n, 21000 + n, 22000 + n, 24000 + n) for n, i in enumerate(ALL_INSTANCES)
        },
        ingress=23000,
        ingress_grpc=23001,
        nodes={node: 23010 + n for n, node in enumerate(NODES)},
    )
    lua = tmp_path / "faults.lua"
    lua.write_text(LUA_DELAY)
    params = dict(_OVERRIDES.get(function, {}))
    if topology == INGRESS_ONLY and "service" in profile_named(function).params:
        params["service"] = "productpage"  # the gateway's route, the one proxied hop there
    setting = MeshSetting(
        ports=ports,
        function=function,
        params=profile_named(function).resolve(params),
        lua_path=lua,
        identities=identities,
        topology=topology,
    )
    return {place.name: proxy_config(place, setting, f"abns@check-{place.name}") for place in proxy_places(topology)}


@pytest.mark.parametrize(("function", "topology"), _cases())
def test_every_profile_renders_configurations_haproxy_accepts(function, topology, identities, tmp_path):
    configs = _configs(function, topology, identities, tmp_path)
    assert set(configs) == {place.name for place in proxy_places(topology)}
    checks = []
    shapes = set()
    for name, text in configs.items():
        shape = re.sub(r"[0-9]+", "#", text)  # reviews-v2's and -v3's, the gRPC replicas': one check each
        if shape in shapes:
            continue
        shapes.add(shape)
        path = tmp_path / f"{name}.cfg"
        path.write_text(text)
        checks.append(
            (
                name,
                subprocess.Popen(
                    ["haproxy", "-c", "-q", "-f", str(path)],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                ),
            )
        )
    for name, check in checks:
        output, _ = check.communicate(timeout=30)
        assert check.returncode == 0, f"{function}/{name}: {output}"
        assert "WARNING" not in output, f"{function}/{name}: {output}"
    if topology == "sidecar":
        _sidecar_configs_change_only_what_the_function_is_about(function, configs)
    gateway = configs[INGRESS_NAME]
    grpc_route = gateway.split("\nfrontend grpc\n")[1]
    if function == "grpc-l4":
        assert "\ndefaults\n    mode tcp\n" in gateway and "proto h2" not in grpc_route
    else:
        assert "    bind 127.0.0.1:23001 proto h2" in grpc_route and grpc_route.count(" proto h2") == 4
    if topology == INGRESS_ONLY:  # straight to the applications and the replicas' gRPC ports
        assert "server productpage-v1 127.0.0.1:20000" in gateway
        assert "server ratings-grpc-1 127.0.0.1:24006" in grpc_route
        assert ("deny_status 429" in gateway) == (function == "rate-limit")  # at the gateway, productpage's own
    if topology == "per-node":
        node_a = configs["node-a-proxy"]
        assert "frontend outbound\n    bind 127.0.0.1:23010" in node_a and "frontend inbound-details-v1\n" in node_a
        if function == "traffic-split":
            assert "server reviews-v1 127.0.0.1:21002 weight 0" in node_a
            assert "server reviews-v2 127.0.0.1:21003 weight 256" in node_a
            assert "server reviews-v3 127.0.0.1:21004 weight 85" in node_a


def _sidecar_configs_change_only_what_the_function_is_about(function: str, configs: dict[str, str]) -> None:
    productpage = configs["productpage-v1-sidecar"]
    details = configs["details-v1-sidecar"]
    if function == "mtls":
        assert "verify required" in details and "ssl crt" in configs[INGRESS_NAME]
    else:
        assert "ssl" not in productpage
    if function == "rate-limit":
        assert "deny_status 429" in productpage and "429" not in details
    if function == "fault-abort":
        assert "return status 500" in productpage.split("\nbackend to_details\n")[1].split("\nbackend ")[0]
        assert "return status 500" not in configs["reviews-v2-sidecar"]
    if function == "lb-random":
        assert "backend to_reviews\n    balance random" in productpage
        assert "backend to_details\n    balance roundrobin" in productpage
    if function == "access-log":
        assert all("option httplog" in text for text in configs.values())
    else:
        assert not any("log stdout" in text for text in configs.values())
