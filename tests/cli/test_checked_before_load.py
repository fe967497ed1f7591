"""Everything that can be checked before load is sent is checked then: a bad --out, a busy
--metrics-port, an impossible port or host, a rate, timeout or duration meshload cannot plan or
record, and more local workers than the machine can run each give one `error:` line, exit 2, no
traceback, and not one request reaches the (real, counting) server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.http_servers import ServerHandle, start_server

from meshload.coordinator.local_workers import MAX_LOCAL_WORKERS_PER_CPU, usable_cpus

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerHandle]:
    handle = start_server("ok")
    try:
        yield handle
    finally:
        handle.stop()


def _meshload_run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MESHLOAD_")}
    command = [sys.executable, "-m", "meshload", "run", *args, "--no-live", "--no-history"]
    return subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=90, check=False)


def _refused_with_one_line(finished: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert finished.returncode == 2, finished.stderr[-2000:]
    lines = [line for line in finished.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, lines
    assert "Traceback" not in finished.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def test_an_out_folder_that_cannot_be_made_is_refused_before_any_request(server: ServerHandle, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    before = server.counters()["requests"]
    finished = _meshload_run(server.url, "-r", "50", "-d", "2s", "--out", str(blocker / "out"), cwd=tmp_path)
    _refused_with_one_line(finished, f"--out {blocker / 'out'}: cannot create the folder", "choose another")
    finished = _meshload_run(server.url, "-r", "50", "-d", "2s", "--out", str(blocker), cwd=tmp_path)
    _refused_with_one_line(finished, "is a file, not a folder")
    assert server.counters()["requests"] == before


def test_a_busy_metrics_port_is_one_line_before_any_process_or_request(server: ServerHandle, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        before = server.counters()["requests"]
        finished = _meshload_run(
            server.url, "-r", "50", "-d", "2s", "--metrics-port", str(port), "--out", str(tmp_path / "o"), cwd=tmp_path
        )
    _refused_with_one_line(finished, f"--metrics-port {port}: cannot listen on 127.0.0.1:{port}", "0 for any free one")
    assert server.counters()["requests"] == before
    assert not (tmp_path / "o" / "smp.json").exists()


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["http://127.0.0.1:70000/", "-r", "5"], ["has no valid port; use a port 1..65535"]),
        (["http:///path", "-r", "5"], ["names no host"]),
        (["{url}", "-r", "inf"], ["--rate: inf is not a rate"]),
        (["{url}", "-r", "nan"], ["--rate: must be greater than 0"]),
        (["{url}", "-r", "1e12"], ["--rate: 1e+12 requests per second is above the most", "1,000,000/s"]),
        (["{url}", "-r", "5", "--timeout", "3h"], ["--timeout: 10800s is longer than the histograms' range (2h)"]),
        (["{url}", "-r", "5", "-d", "10000h"], ["above the longest run (30 days)"]),
        (
            ["{url}", "-r", "5", "-w", str(MAX_LOCAL_WORKERS_PER_CPU * usable_cpus() + 1)],
            [f"at most {MAX_LOCAL_WORKERS_PER_CPU * usable_cpus()} local workers here", "fleet"],
        ),
    ],
    ids=["port", "no-host", "rate-inf", "rate-nan", "rate-huge", "timeout", "duration", "workers"],
)
def test_bounds_are_one_line_before_anything_starts(
    server: ServerHandle, tmp_path: Path, args: list[str], fragments: list[str]
) -> None:
    before = server.counters()["requests"]
    args = [arg.replace("{url}", server.url) for arg in args]
    if "-d" not in args:
        args += ["-d", "1s"]
    finished = _meshload_run(*args, cwd=tmp_path)
    _refused_with_one_line(finished, *fragments)
    assert server.counters()["requests"] == before
    assert not (tmp_path / "runs").exists()  # no run folder: nothing was started


def test_the_local_worker_cap_leaves_fleet_placements_alone() -> None:
    from meshload.coordinator.run import RunOptions
    from meshload.errors import UsageError

    many = MAX_LOCAL_WORKERS_PER_CPU * usable_cpus() + 1
    RunOptions(workers=many, redis_url="redis://127.0.0.1:1", placement="fleet")  # not refused
    with pytest.raises(UsageError, match="local workers here"):
        RunOptions(workers=many, placement="local")


def test_a_study_out_folder_that_cannot_be_made_is_refused_before_the_testbed_starts(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    state = tmp_path / "testbed"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MESHLOAD_")}
    environment["MESHLOAD_TESTBED_DIR"] = str(state)
    command = [sys.executable, "-m", "meshload", "study", "--quick", "--out", str(blocker / "out"), "--no-history"]
    finished = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=90, check=False)
    _refused_with_one_line(finished, f"--out {blocker / 'out'}: cannot create the folder")
    assert not state.exists()  # the testbed was never started


def test_the_out_check_leaves_nothing_behind(tmp_path: Path) -> None:
    from meshload.results.out_folder import check_out_dir

    check_out_dir(tmp_path / "a" / "b" / "c")
    assert list(tmp_path.iterdir()) == []
