"""`meshload run grpc://...` as a user runs it: server reflection asked once before the run, statuses by
name on the terminal and in smp.json, and a method the server lacks as one line before any load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.coordinator.test_coordinator_cli import error_lines, meshload
from tests.support.grpc_servers import SERVICE, start_grpc_server

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def reflecting_server():
    server = start_grpc_server("status", statuses="OK,UNAVAILABLE", reflection=True)
    yield server
    server.stop()


def test_a_grpc_run_by_reflection_reports_statuses_by_name(reflecting_server, tmp_path: Path) -> None:
    url = f"{reflecting_server.url}{SERVICE}/Unary"
    out = tmp_path / "run"
    completed = meshload(
        "run", url, "--data", '{"id": 1}', "--rate", "100", "--duration", "1s", "--no-live", "--out", str(out),
        cwd=tmp_path,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert "status    OK: 50  UNAVAILABLE: 50" in completed.stdout + completed.stderr
    smp = json.loads((out / "smp.json").read_text())
    assert smp["meshload"]["status_codes"] == {"OK": 50, "UNAVAILABLE": 50}
    assert smp["config"]["clients"][0]["protocol"] == 4
    assert reflecting_server.counters()["calls"] == 100


def test_a_method_the_server_lacks_is_one_line_before_any_load(reflecting_server, tmp_path: Path) -> None:
    url = f"{reflecting_server.url}{SERVICE}/Nope"
    completed = meshload("run", url, "--rate", "100", "--duration", "1s", "--no-live", cwd=tmp_path)
    assert completed.returncode == 2
    errors = [line for line in error_lines(completed.stderr) if line.startswith("error:")]
    assert errors == [f"error: {url}: service '{SERVICE}' has no method 'Nope'; its methods are: Stream, Unary, Upload"]
    assert reflecting_server.counters()["calls"] == 0
    assert "Traceback" not in completed.stderr
