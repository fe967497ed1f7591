"""A soak run whose coordinator is killed with SIGKILL mid-run, then resumed: the workers went on
alone (an external Redis), the checkpoint left a partial report on disk, and the resumed report
counts exactly the requests the server answered, each once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.support.redis_server import RedisServer

from meshload.pipeline import wire
from meshload.results.outputs import load_run_result

pytestmark = pytest.mark.timeout(150)

RATE = 40.0
DURATION_S = 30
WARMUP_S = 2
CHECKPOINT_S = 4


def meshload(*args: str) -> list[str]:
    return [sys.executable, "-m", "meshload", *args]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MESHLOAD_")}


def wait_for_checkpoint(smp_path: Path, coordinator: subprocess.Popen[bytes], timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert coordinator.poll() is None, "the coordinator ended before its first checkpoint"
        if smp_path.is_file():
            block = json.loads(smp_path.read_text())["meshload"]
            if block["partial"] and block["requests"] > 0:
                return block
        time.sleep(0.2)
    raise AssertionError("no partial report was checkpointed")


def test_a_killed_coordinator_is_resumed_and_the_counts_are_exact(http_server, fleet_factory, tmp_path) -> None:
    out = tmp_path / "soak"
    with RedisServer() as redis_server:
        client = redis_server.client()
        fleet = fleet_factory(redis_server.url)
        for worker_id in ("s0", "s1"):
            fleet.start(worker_id)
        fleet.wait_registered(client, ["s0", "s1"])
        coordinator = subprocess.Popen(
            meshload(
                "run", http_server.url, "--rate", str(RATE), "--duration", f"{DURATION_S}s",
                "--warmup", f"{WARMUP_S}s", "--workers", "2", "--placement", "fleet",
                "--redis", redis_server.url, "--checkpoint", f"{CHECKPOINT_S}s", "--out", str(out),
                "--no-live", "--no-history",
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=clean_env(),
        )  # fmt: skip
        try:
            checkpoint = wait_for_checkpoint(out / "smp.json", coordinator, timeout_s=40)
        finally:
            coordinator.send_signal(signal.SIGKILL)
            coordinator.wait(10)
            assert coordinator.stderr is not None
            coordinator.stderr.close()
        run_id = checkpoint["run_id"]
        assert "partial" in (out / "report.html").read_text()
        keys = wire.RunKeys(run_id)

        # Alone, the workers go on publishing (a detached run), and nobody stops them.
        published = client.xlen(keys.records)
        time.sleep(wire.COORDINATOR_TTL_MS / 1000.0 + 1.0)
        assert not client.exists(keys.coordinator)
        assert client.xlen(keys.records) > published
        assert not client.exists(keys.stop)

        resumed = subprocess.run(
            meshload("resume", run_id, "--redis", redis_server.url, "--no-live", "--no-history"),
            capture_output=True,
            env=clean_env(),
            timeout=90,
            check=False,
        )
        assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]
        client.close()

    result = load_run_result(out)  # the folder the run was started with
    assert not result.partial
    assert result.run_id == run_id
    assert result.environment.get("resumed") is True
    # Exactly what the server answered: nothing lost while no coordinator listened, nothing twice.
    assert result.completed + result.warmup_completed == http_server.counters()["requests"]
    assert result.completed > checkpoint["requests"]
    # (Late sends may make a run on a busy machine invalid; that is the generator's verdict, not this test's.)
    assert not result.degraded, result.validity
    assert not any("lost" in reason or "partial" in reason for reason in result.validity), result.validity
    for worker in result.workers:
        assert not worker.lost
        # Every record of the worker once in the interval log: one line per interval, no interval twice.
        offsets = [record.offset_s for record in result.records if record.worker_id == worker.id]
        assert len(offsets) == len(set(offsets)) == worker.records
    # The whole planned run was measured (within a record interval), with the coordinator dead for part.
    assert result.measured_s == pytest.approx(DURATION_S, abs=1.5)


def test_resuming_what_cannot_be_resumed_is_one_line(tmp_path) -> None:
    with RedisServer() as redis_server:
        finished = subprocess.run(
            meshload("resume", "20260101T000000-abcdef", "--redis", redis_server.url, "--no-live", "--no-history"),
            capture_output=True,
            env=clean_env(),
            timeout=60,
            check=False,
        )
    assert finished.returncode == 2
    errors = [line for line in finished.stderr.decode().splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "nothing to resume" in errors[0]
    assert "Traceback" not in finished.stderr.decode()
