"""`meshload mesh render` and `meshload mesh functions` as a user runs them: real processes, YAML and
JSON on stdout, one-line errors on stderr and their exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

MESHLOAD = [sys.executable, "-c", "from meshload.cli import main; main()"]


def meshload(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MESHLOAD_")}
    environment.update(env or {})
    return subprocess.run(
        [*MESHLOAD, *args], env=environment, capture_output=True, text=True, timeout=60, check=False, cwd=Path.cwd()
    )


def test_render_prints_the_resources_as_yaml_for_review_and_gitops() -> None:
    done = meshload(
        "mesh",
        "render",
        "--mesh",
        "istio",
        "--function",
        "retries",
        "--set",
        "attempts=2",
        "--set",
        "service=ratings",
        "--namespace",
        "shop",
    )
    assert done.returncode == 0, done.stderr
    documents = [d for d in yaml.safe_load_all(done.stdout) if d]
    assert {d["metadata"]["namespace"] for d in documents} == {"shop"}
    (ratings,) = [d for d in documents if d["kind"] == "VirtualService" and d["metadata"]["name"] == "ratings"]
    assert ratings["spec"]["http"][0]["retries"]["attempts"] == 2
    assert done.stdout.startswith("# meshload: istio retries attempts=2")

    patched = meshload("mesh", "render", "--function", "timeout", env={"MESHLOAD_MESH": "linkerd"})
    assert patched.returncode == 0, patched.stderr
    assert "# merge patch on the existing Service bookinfo/reviews" in patched.stdout
    assert "timeout.linkerd.io/request: 500ms" in patched.stdout


@pytest.mark.parametrize(
    ("args", "code", "line"),
    [
        (
            ["--mesh", "linkerd", "--function", "fault-delay"],
            1,
            "error: linkerd fault-delay: not supported (Linkerd has no fault injection;",
        ),
        (["--mesh", "consul", "--function", "mtls"], 1, "error: consul mtls: in baseline (Consul always requires mTLS"),
        (
            ["--mesh", "kuma", "--function", "retries"],
            2,
            "error: Invalid value for '--mesh'",  # a choice typer checks (and lists in --help)
        ),
        (
            ["--mesh", "istio", "--function", "retries", "--set", "attempts"],
            2,
            "error: --set 'attempts': expected key=value",
        ),
        (
            ["--mesh", "istio", "--function", "timeout", "--set", "timeout_ms=soon"],
            2,
            "error: timeout parameter timeout_ms='soon': expected a whole number",
        ),
    ],
)
def test_render_refuses_in_one_line(args: list[str], code: int, line: str) -> None:
    done = meshload("mesh", "render", *args)
    assert done.returncode == code
    assert done.stdout == ""
    lines = [text for text in done.stderr.splitlines() if text.strip()]
    assert len(lines) == 1 and lines[0].startswith(line), done.stderr


def test_functions_lists_support_and_baselines() -> None:
    done = meshload("mesh", "functions", "--json")
    assert done.returncode == 0, done.stderr
    listing = json.loads(done.stdout)
    assert set(listing) == {"istio", "linkerd", "consul"}
    assert listing["linkerd"]["functions"]["lb-random"]["level"] == "not supported"
    assert listing["linkerd"]["functions"]["circuit-breaker"]["level"] == "partial"
    assert listing["consul"]["functions"]["mtls"]["level"] == "in baseline"
    assert listing["istio"]["functions"]["traffic-split"]["level"] == "supported"
    assert listing["consul"]["baseline"]["mtls_encrypted"] is True
    assert listing["istio"]["baseline"]["mtls_encrypted"] is False

    table = meshload("mesh", "functions", "--mesh", "consul")
    assert table.returncode == 0 and "fault-abort" in table.stdout and "consul baseline: mtls: required" in table.stdout
