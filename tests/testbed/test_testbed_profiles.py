"""Function profiles: parameters are checked, and every profile's configuration is valid HAProxy."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from meshload.testbed import PROFILES, TestbedFailure, parse_settings, profile_named
from meshload.testbed.certs import ensure_identities
from meshload.testbed.haproxy_config import (
    LUA_DELAY,
    MeshSetting,
    ingress_config,
    sidecar_config,
)
from meshload.testbed.topology import (
    INGRESS_NAME,
    INSTANCES,
    SERVICES,
    InstancePorts,
    Ports,
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


@pytest.fixture(scope="module")
def identities(tmp_path_factory):
    return ensure_identities(tmp_path_factory.mktemp("certs"), [*SERVICES, INGRESS_NAME])


@pytest.mark.parametrize("function", [name for name in EVERY_FUNCTION if name != "none"])
def test_every_profile_renders_configurations_haproxy_accepts(function, identities, tmp_path):
    ports = Ports(
        instances={i.name: InstancePorts(20000 + n, 21000 + n, 22000 + n) for n, i in enumerate(INSTANCES)},
        ingress=23000,
    )
    lua = tmp_path / "faults.lua"
    lua.write_text(LUA_DELAY)
    overrides = {"fault-abort": {"service": "details", "end_user": ""}, "lb-random": {"service": "reviews"}}
    setting = MeshSetting(
        ports=ports,
        function=function,
        params=profile_named(function).resolve(overrides.get(function)),
        lua_path=lua,
        identities=identities,
    )
    configs = {f"{i.name}-sidecar": sidecar_config(i, setting, f"abns@check-{i.name}") for i in INSTANCES}
    configs[INGRESS_NAME] = ingress_config(setting, "abns@check-ingress")
    checks = []
    for name, text in configs.items():
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
    # each function changes what it is about, and only where it applies
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
