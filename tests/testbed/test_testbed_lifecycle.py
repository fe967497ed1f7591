"""Starting, stopping, and cleaning up after a controller that died."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import psutil
import pytest

import meshload
from meshload.testbed import Testbed, TestbedFailure
from meshload.testbed.processes import marked_processes

from .client import fetch


def _saved(bed: Testbed) -> dict[str, Any]:
    """The testbed's state file, which must exist."""
    state = bed.folder.load()
    assert state is not None
    return state


UP_BUDGET_S = 10.0

_CLI = "import sys; from meshload.cli import main; main(sys.argv[1:])"

_CONTROLLER = """
import sys, time
from pathlib import Path
import meshload
from meshload.testbed import Testbed, TestbedFailure
Testbed(Path(sys.argv[1])).up("sidecar")
print("up", flush=True)
time.sleep(120)
"""


def _recorded_pids(state_dir) -> list[int]:
    state = json.loads((state_dir / "state.json").read_text())
    return [record["pid"] for record in state["processes"]]


def test_up_is_quick_and_down_leaves_nothing(tmp_path):
    bed = Testbed(tmp_path / "tb")
    started = time.monotonic()
    bed.up("mtls")
    up_s = time.monotonic() - started
    try:
        assert up_s < UP_BUDGET_S
        assert fetch(f"{bed.ingress_url}/productpage").status == 200
        status = bed.status()
        assert status["running"] and status["function"] == "mtls"
        assert sorted(p["kind"] for p in status["processes"]).count("sidecar") == 9
        app_pids = {p["pid"] for p in status["processes"] if p["kind"] == "app"}
        bed.up("sidecar")  # already running: switches the function, keeps the applications
        assert {p["pid"] for p in bed.status()["processes"] if p["kind"] == "app"} == app_pids
        assert bed.current_function() == "sidecar"
        # a process dies: the testbed says so, refuses to switch, and `up` starts it afresh
        details = next(p for p in bed.status()["processes"] if p["name"] == "details-v1")
        old_mark = _saved(bed)["mark"]
        os.kill(details["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 5
        while bed.is_running() and time.monotonic() < deadline:
            time.sleep(0.02)
        status = bed.status()
        assert not status["running"] and not next(p for p in status["processes"] if p["name"] == "details-v1")["alive"]
        with pytest.raises(TestbedFailure, match="is not running"):
            bed.apply("mtls")
        bed.up("sidecar")
        assert bed.is_running() and _saved(bed)["mark"] != old_mark
        assert marked_processes(old_mark) == []
        assert fetch(f"{bed.ingress_url}/api/v1/products/0").status == 200
        # A testbed started by another meshload release (its apps speak that release's admin
        # protocol) is restarted by `up`, not reused.
        state = _saved(bed)
        older_mark = state["mark"]
        bed.folder.save({**state, "meshload_version": "0.0.1"})
        bed.up("sidecar")
        assert _saved(bed)["mark"] != older_mark and _saved(bed)["meshload_version"] == meshload.__version__
        assert marked_processes(older_mark) == []
        served = bed.served_by_replica()["reviews"]  # the new apps answer this release's admin protocol
        assert set(served) == {"reviews-v1", "reviews-v2", "reviews-v3"} and sum(served.values()) <= 3
    finally:
        mark = _saved(bed)["mark"]
        pids = _recorded_pids(bed.folder.root)
        assert bed.down() == []
    assert marked_processes(mark) == []
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in pids)
    assert not bed.status()["running"] and bed.down() == []  # a second down is harmless


def test_down_cleans_up_after_the_controller_was_killed(tmp_path):
    state_dir = tmp_path / "tb"
    controller = subprocess.Popen(
        [sys.executable, "-c", _CONTROLLER, str(state_dir)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert controller.stdout is not None and controller.stdout.readline().strip() == "up"
        bed = Testbed(state_dir)
        url = bed.ingress_url
        mark = _saved(bed)["mark"]
        os.kill(controller.pid, signal.SIGKILL)
        controller.wait(timeout=5)
        # the testbed outlives its controller ...
        assert fetch(f"{url}/productpage").status == 200
        assert len(marked_processes(mark)) == 20  # 9 applications, 9 sidecars, the gateway, the metrics exporter
        # ... and another process takes it down completely
        assert Testbed(state_dir).down() == []
        assert marked_processes(mark) == []
    finally:
        if controller.poll() is None:
            controller.kill()
            controller.wait()
        Testbed(state_dir).down()


def test_down_finds_processes_started_before_a_controller_died_mid_start(tmp_path):
    state_dir = tmp_path / "tb"
    controller = subprocess.Popen([sys.executable, "-c", _CONTROLLER, str(state_dir)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        mark = None
        while time.monotonic() < deadline:  # kill it while it is still starting applications
            try:
                state = json.loads((state_dir / "state.json").read_text())
            except (FileNotFoundError, ValueError):
                time.sleep(0.005)
                continue
            if state["processes"]:
                mark = state["mark"]
                break
            time.sleep(0.005)
        assert mark is not None
        os.kill(controller.pid, signal.SIGKILL)
        controller.wait(timeout=5)
        assert marked_processes(mark), "nothing had started yet"
        assert Testbed(state_dir).down() == []
        assert marked_processes(mark) == []
    finally:
        if controller.poll() is None:
            controller.kill()
            controller.wait()
        Testbed(state_dir).down()


def test_cli_drives_the_testbed(tmp_path):
    env = {**os.environ, "MESHLOAD_TESTBED_DIR": str(tmp_path / "tb")}

    def meshload(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", _CLI, "testbed", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    up = meshload("up", "--function", "rate-limit", "--set", "limit_rps=5", "--topology", "per-node")
    assert up.returncode == 0, up.stderr
    url = up.stdout.strip()
    mark = json.loads((tmp_path / "tb" / "state.json").read_text())["mark"]
    try:
        assert fetch(f"{url}/productpage").status == 200
        status = json.loads(meshload("status", "--json").stdout)
        assert status["function"] == "rate-limit" and status["params"]["limit_rps"] == "5"
        assert status["topology"] == "per-node" and status["grpc"]["service"] == "ratings.v1.Ratings"
        assert set(status["grpc"]["calls"]) == {"ratings-grpc-1", "ratings-grpc-2", "ratings-grpc-3"}
        assert (
            status["ingress_url"] == url and len(status["processes"]) == 13
        )  # 9 apps, 2 node proxies, gateway, exporter
        assert all(p["alive"] and p["pid"] > 0 and p["ports"] for p in status["processes"])

        switched = meshload("up", "--topology", "ingress-only")  # a running testbed switches
        assert switched.returncode == 0, switched.stderr
        assert "(ingress-only)" in switched.stderr and switched.stdout.strip() == url
        refused = meshload("apply", "mtls")
        assert refused.returncode == 1 and refused.stderr.strip().splitlines() == [refused.stderr.strip()]
        assert "mtls does not apply in the ingress-only topology" in refused.stderr
        listing = json.loads(meshload("functions", "--json").stdout)
        assert listing["traffic-split"]["params"]["weights"]["default"] == "80,10,10"
        assert listing["mtls"]["topologies"] == ["sidecar", "per-node"]
        assert listing["mtls"]["topology_notes"]["ingress-only"].startswith("does not apply: services call")
        assert listing["timeout"]["topology_notes"]["ingress-only"].startswith("service=productpage only")

        unknown = meshload("apply", "no-such-function")
        assert unknown.returncode == 1
        assert unknown.stderr.strip().splitlines() == [unknown.stderr.strip()]  # one line, no traceback
        assert "unknown testbed function 'no-such-function'" in unknown.stderr
        malformed = meshload("apply", "timeout", "--set", "timeout_ms")
        assert malformed.returncode == 2 and "key=value" in malformed.stderr
        out_of_range = meshload("apply", "timeout", "--set", "timeout_ms=0")
        assert out_of_range.returncode == 1 and "timeout_ms='0'" in out_of_range.stderr

        applied = meshload("apply", "timeout", "--set", "timeout_ms=250", "--set", "service=productpage")
        assert applied.returncode == 0, applied.stderr
        text = meshload("status").stdout
        assert "function   timeout" in text and "timeout_ms=250" in text and "ingress-gateway" in text
        assert "topology   ingress-only" in text
        mode = meshload("mode", "ratings", "faulty")
        assert (
            mode.returncode == 0 and json.loads(meshload("status", "--json").stdout)["app_modes"]["ratings"] == "faulty"
        )
    finally:
        down = meshload("down")
    assert down.returncode == 0, down.stderr
    assert "not running" in meshload("status").stdout
    assert marked_processes(mark) == []


def test_the_adapter_speaks_the_mesh_protocol_and_user_errors(tmp_path):
    from meshload.coordinator.mesh.base import MeshAdapter
    from meshload.coordinator.mesh.local import LocalTestbedMesh
    from meshload.errors import TestbedError

    mesh = LocalTestbedMesh(tmp_path / "never-started")
    # checked on the class: on Python 3.11 isinstance() with a Protocol reads `ingress_url`
    protocol = [name for name in dir(MeshAdapter) if not name.startswith("_")]
    assert set(protocol) >= {"ingress_url", "functions", "apply", "current_function", "start_sampling"}
    assert all(hasattr(LocalTestbedMesh, name) for name in protocol) and mesh.name == "testbed-haproxy"
    assert mesh.functions()[:3] == ["none", "sidecar", "mtls"]
    with pytest.raises(TestbedError, match=r"is not running; start it with `meshload testbed up`"):
        _ = mesh.ingress_url
    with pytest.raises(TestbedError, match=r"is not running"):
        mesh.start_sampling()
    with pytest.raises(TestbedError, match=r"unknown testbed function 'mtsl'"):
        mesh.apply("mtsl")  # refused before anything starts
    with pytest.raises(TestbedError, match=r"ratings cannot be 'sleepy': modes are normal, failing, faulty"):
        mesh.up("sidecar", app_modes={"ratings": "sleepy"})
    assert not mesh.status()["running"] and not (tmp_path / "never-started" / "state.json").exists()
    mesh.down()  # nothing to stop is not an error
