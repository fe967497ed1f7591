"""`meshload testbed status` tells the truth in its exit code: 0 while every testbed process runs,
1 (naming the dead one) once one of them has died, 0 again once the testbed is down."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from meshload.testbed import Testbed
from meshload.testbed.processes import marked_processes


def _status(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MESHLOAD_TESTBED_DIR": str(state_dir)}
    command = [sys.executable, "-m", "meshload", "testbed", "status", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_status_exits_non_zero_and_names_a_dead_process(tmp_path: Path) -> None:
    bed = Testbed(tmp_path / "tb")
    bed.up("sidecar")
    state = bed.folder.load()
    assert state is not None
    mark = state["mark"]
    try:
        healthy = _status(bed.folder.root)
        assert healthy.returncode == 0 and "running    yes" in healthy.stdout, healthy.stderr

        victim = next(p for p in bed.status()["processes"] if p["name"] == "reviews-v2")
        os.kill(victim["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while psutil.pid_exists(victim["pid"]) and psutil.Process(victim["pid"]).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline
            time.sleep(0.05)

        broken = _status(bed.folder.root)
        assert broken.returncode == 1
        assert "reviews-v2" in broken.stdout and "(dead)" in broken.stdout
        errors = [line for line in broken.stderr.splitlines() if line.strip()]
        assert errors == [
            f"error: testbed process reviews-v2 (app, pid {victim['pid']}) is dead; "
            "restart the testbed with `meshload testbed down` then `up`"
        ]
        as_json = _status(bed.folder.root, "--json")
        assert as_json.returncode == 1 and json.loads(as_json.stdout)["running"] is False
    finally:
        bed.down()
    stopped = _status(bed.folder.root)
    assert stopped.returncode == 0 and "not running" in stopped.stdout
    assert marked_processes(mark) == []
