"""SIGINT and SIGTERM during a real `meshload run`: the workers stop, what was measured until then is
written marked interrupted (smp.json, the console), the exit code is the shell's 130/143, and no
process of the run is left; a signal before any load was measured says plainly that nothing was
written. SIGINT goes to the whole process group, as a terminal's Ctrl-C does; SIGTERM to the
coordinator alone, as `kill` does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from tests.support.http_servers import ServerHandle, start_server
from tests.support.redis_server import RedisServer

from meshload.pipeline import wire

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

#: How long the run's processes may take to go after the coordinator exited.
GONE_WITHIN_S = 5.0


@pytest.fixture
def server() -> Iterator[ServerHandle]:
    handle = start_server("ok")
    try:
        yield handle
    finally:
        handle.stop()


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MESHLOAD_")}


def _start(*args: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "meshload", "run", *args, "--no-live", "--no-history"]
    # A session of its own: the test plays the terminal, whose Ctrl-C reaches the whole group.
    return subprocess.Popen(
        command, env=_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def _wait_for(condition: Callable[[], bool], process: subprocess.Popen[str], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert process.poll() is None, f"exited before {what}: {process.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, f"never {what}"
        time.sleep(0.05)


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _send(process: subprocess.Popen[str], signum: int) -> None:
    if signum == signal.SIGINT:
        os.killpg(process.pid, signum)
    else:
        os.kill(process.pid, signum)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_run_writes_what_it_measured_marked_interrupted_and_exits_128_plus_the_signal(
    server: ServerHandle, tmp_path: Path, signum: int
) -> None:
    out = tmp_path / "out"
    run = _start(server.url, "-r", "40", "-d", "60s", "-w", "2", "--out", str(out))
    try:
        start = server.counters()["requests"]
        _wait_for(lambda: server.counters()["requests"] - start >= 20, run, "sent load")
        children = psutil.Process(run.pid).children(recursive=True)
        _send(run, signum)
        stdout, stderr = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    name = signal.Signals(signum).name
    assert run.returncode == 128 + signum, stderr[-2000:]
    assert "Traceback" not in stderr
    assert f"the run was INTERRUPTED ({name})" in stderr and str(out) in stderr
    assert "valid     NO" in stdout
    gone_by = time.monotonic() + GONE_WITHIN_S
    while any(_alive(child) for child in children) and time.monotonic() < gone_by:
        time.sleep(0.05)
    assert [child.name() for child in children if _alive(child)] == []
    answered = server.counters()["requests"]
    time.sleep(1.0)
    assert server.counters()["requests"] == answered, "load went on after the run ended"

    block = json.loads((out / "smp.json").read_text())["meshload"]
    assert block["interrupted"] is True and block["interrupted_by"] == name
    assert block["valid"] is False
    assert block["reasons"][0]["cause"] == "interrupted" and block["reasons"][0]["effect"] == "invalid"
    # What was measured is what the server answered (the run's requests, none lost, none invented).
    assert 20 <= block["requests"] <= answered - start
    assert block["requests"] >= answered - start - 2  # at most a request in flight per worker at the stop
    assert block["measured_s"] < 30
    for name_of_file in ("fortio.json", "histograms.hlog", "report.html"):
        assert (out / name_of_file).is_file()


def test_a_signal_before_any_load_was_measured_says_nothing_was_written(server: ServerHandle, tmp_path: Path) -> None:
    """The coordinator waits for a fleet worker's answer (the worker is frozen: SIGSTOP, its liveness
    key kept by the test) when SIGTERM arrives."""
    with RedisServer() as redis_server:
        client = redis_server.client()
        environment = _environment()
        worker = subprocess.Popen(
            [sys.executable, "-m", "meshload", "worker", "--id", "frozen", "--redis", redis_server.url],
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        run: subprocess.Popen[str] | None = None
        try:
            deadline = time.monotonic() + 30
            while client.get(wire.worker_alive_key("frozen")) != b"idle":
                assert worker.poll() is None and time.monotonic() < deadline, "the worker did not register"
                time.sleep(0.05)
            os.kill(worker.pid, signal.SIGSTOP)
            client.set(wire.worker_alive_key("frozen"), b"idle", px=60_000)
            out = tmp_path / "out"
            run = _start(server.url, "-r", "40", "-d", "5s", "--redis", redis_server.url, "--out", str(out))
            # (The frozen worker's blocking read took the assignment off its list already: the
            # coordinator's own key says that it is waiting for the answers.)
            _wait_for(lambda: bool(client.keys("meshload:run:*:coordinator")), run, "assigned the run")
            os.kill(run.pid, signal.SIGTERM)
            _, stderr = run.communicate(timeout=60)
            assert run.returncode == 143, stderr[-2000:]
            assert "interrupted (SIGTERM) before any load was measured; nothing was written" in stderr
            assert "Traceback" not in stderr
            assert not (out / "smp.json").exists()
            assert server.counters()["requests"] == 0
        finally:
            if run is not None and run.poll() is None:
                run.kill()
                run.communicate()
            if worker.poll() is None:
                os.kill(worker.pid, signal.SIGCONT)
                worker.terminate()
            try:
                worker.wait(15)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
