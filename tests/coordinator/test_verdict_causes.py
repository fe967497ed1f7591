"""Verdicts that name what really happened, with real processes: a run in which nothing succeeded
says so first; a Redis restart after which every record arrived leaves a complete run valid (a
note); a worker frozen (SIGSTOP) long enough to be counted lost and then thawed (SIGCONT) is "back",
its requests all counted, not "lost, the load after it was not sent". Each reason is in the console
and in smp.json with its cause code."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from tests.support.http_servers import ServerHandle
from tests.support.redis_server import RedisServer

from meshload.pipeline import wire

#: What a shared, loaded machine can do to any run's schedule (the generator's own verdicts, true
#: when they appear): allowed beside the reason under test, which must not be invalid itself.
SCHEDULE_CAUSES = {"fell-behind", "sent-late", "never-sent", "cpu-saturated"}

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def _start(*args: str) -> subprocess.Popen[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MESHLOAD_")}
    command = [sys.executable, "-m", "meshload", "run", *args, "--no-live", "--no-history"]
    return subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(condition: Callable[[], bool], process: subprocess.Popen[str], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert process.poll() is None, f"exited before {what}: {process.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, f"never {what}"
        time.sleep(0.05)


def _finish(process: subprocess.Popen[str]) -> tuple[str, str]:
    try:
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert "Traceback" not in stderr, stderr[-3000:]
    return stdout, stderr


def _block(out: Path) -> dict:
    return json.loads((out / "smp.json").read_text())["meshload"]


def _causes(block: dict) -> dict[str, str]:
    return {reason["cause"]: reason["effect"] for reason in block["reasons"]}


def test_a_run_in_which_nothing_succeeded_says_so_first(refused_url: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    stdout, stderr = _finish(_start(refused_url, "-r", "20", "-d", "2s", "--out", str(out)))
    block = _block(out)
    assert block["valid"] is False
    assert block["reasons"][0]["cause"] == "nothing-succeeded", block["reasons"]
    assert "NOTHING SUCCEEDED: not one of the" in stderr and "check that the target is up" in stderr
    assert "valid     NO" in stdout
    assert sum(block["errors"].values()) > 0 and block["reasons"][0]["message"] in block["validity"]


def test_a_redis_restart_after_which_every_record_arrived_leaves_a_complete_run_valid(
    http_server: ServerHandle, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with RedisServer() as redis_server:
        run = _start(
            http_server.url, "-r", "40", "-d", "8s", "-w", "2", "--redis", redis_server.url,
            "--results-ttl", "0", "--out", str(out),
        )  # fmt: skip
        start = http_server.counters()["requests"]
        _wait_for(lambda: http_server.counters()["requests"] - start >= 60, run, "sent load")
        redis_server.stop()  # a restart without persistence: every key and the records stream go
        redis_server.folder.mkdir(parents=True, exist_ok=True)
        redis_server.start()
        stdout, stderr = _finish(run)
    answered = http_server.counters()["requests"] - start
    assert run.returncode == 0, stderr[-2000:]
    block = _block(out)
    causes = _causes(block)
    assert causes.pop("stream-recovered") == "note", block["validity"]
    assert set(causes) <= SCHEDULE_CAUSES, block["validity"]  # nothing else: no loss, no short coverage
    assert block["valid"] is (not causes) and block["degraded"] is False
    assert all(worker["finished"] and worker["missing_records"] == 0 for worker in block["workers"])
    assert not any(worker["lost"] for worker in block["workers"])
    assert block["requests"] + block["warmup"]["completed"] == answered  # every request counted, once
    assert "every worker's records arrived in full" in stderr
    assert ("valid     yes" in stdout) is (not causes)


def test_a_frozen_worker_that_comes_back_is_not_reported_lost(http_server: ServerHandle, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = _start(http_server.url, "-r", "40", "-d", "12s", "-w", "2", "--out", str(out))
    try:
        start = http_server.counters()["requests"]
        _wait_for(lambda: http_server.counters()["requests"] - start >= 40, run, "sent load")
        workers = [
            child
            for child in psutil.Process(run.pid).children(recursive=True)
            if "worker" in child.cmdline() and "meshload" in child.cmdline()
        ]
        assert len(workers) == 2
        frozen = workers[0]
        frozen.send_signal(signal.SIGSTOP)
        time.sleep(wire.HEARTBEAT_LIVENESS_S + 2.0)  # counted lost by now
        frozen.send_signal(signal.SIGCONT)
    finally:
        _, stderr = _finish(run)
    answered = http_server.counters()["requests"] - start
    block = _block(out)
    causes = _causes(block)
    assert causes.pop("workers-returned") == "note", block["validity"]
    # A frozen worker does fall behind its schedule (true, and said); it is not lost.
    assert set(causes) <= SCHEDULE_CAUSES, block["validity"]
    (back,) = [worker for worker in block["workers"] if worker["returned"]]
    assert not back["lost"] and back["finished"] and back["missing_records"] == 0
    assert back["lost_reason"].startswith("silent for")
    assert "went silent for a while and came back" in stderr
    assert "the load after it was not sent" not in stderr
    assert block["requests"] + block["warmup"]["completed"] == answered  # all its requests counted


def test_a_target_that_dies_mid_run_is_named_not_the_generator(tmp_path: Path) -> None:
    from tests.support.http_servers import start_server

    out = tmp_path / "out"
    target = start_server("ok")
    try:
        run = _start(target.url, "-r", "100", "-d", "5s", "--out", str(out))
        _wait_for(lambda: target.counters()["requests"] >= 150, run, "sent load")
        target.process.kill()  # as a testbed process that dies: its port refuses from now on
        target.process.wait()
        stdout, stderr = _finish(run)
    finally:
        target.stop()
    block = _block(out)
    assert block["reasons"][0]["cause"] == "target-failed", block["validity"]
    assert "Look at the target (did a process of it die?)" in stderr
    assert block["errors"].get("connect_refused", 0) > 0 and block["requests"] >= 150
    assert block["measured_s"] == pytest.approx(5.0, abs=0.6)  # the window is the run's, not the target's
    assert "valid     NO" in stdout
