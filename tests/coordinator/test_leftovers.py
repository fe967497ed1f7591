"""Nothing left behind: a real `meshload run` coordinator killed mid-run takes its private redis-server
and its local workers with it within moments, and the next run reaps the folder it left, while
folders of live coordinators and processes that are not a dead run's own Redis are left alone."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from tests.support.http_servers import ServerHandle

from meshload.coordinator import run_folders

pytestmark = pytest.mark.timeout(120)

#: How long a killed coordinator's Redis and workers may take to go.
GONE_WITHIN_S = 5.0


@pytest.fixture
def runtime_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A runtime directory of this test's own (short: a Unix socket path lives inside it)."""
    folder = Path(tempfile.mkdtemp(prefix="mlrt-"))
    monkeypatch.setenv(run_folders.RUNTIME_DIR_ENV, str(folder))
    yield folder
    for leftover in folder.glob("*/redis.pid"):  # never more than this test's own, if it failed
        pid = json.loads(leftover.read_text())["pid"]
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if "redis-server" in " ".join(psutil.Process(pid).cmdline()):
                os.kill(pid, signal.SIGKILL)
    subprocess.run(["rm", "-rf", str(folder)], check=False)


def _meshload_run(url: str, runtime_dir: Path, out: Path, *args: str) -> subprocess.Popen[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MESHLOAD_")}
    environment[run_folders.RUNTIME_DIR_ENV] = str(runtime_dir)
    command = [sys.executable, "-m", "meshload", "run", url, "--no-live", "--out", str(out), *args]
    return subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_killed_coordinator_takes_its_redis_and_workers_along_and_the_next_run_reaps_its_folder(
    http_server: ServerHandle, runtime_dir: Path, tmp_path: Path, signum: int
) -> None:
    server = http_server
    coordinator = _meshload_run(server.url, runtime_dir, tmp_path / "killed", "--rate", "40", "-d", "60s", "-w", "2")
    try:
        deadline = time.monotonic() + 60
        while server.counters()["requests"] < 10:  # both workers are sending
            assert coordinator.poll() is None, coordinator.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "the run never started sending"
            time.sleep(0.1)
        children = psutil.Process(coordinator.pid).children(recursive=True)
        names = sorted(child.name() for child in children)
        assert names.count("redis-server") == 1 and len(children) == 3, names
        (dead_folder,) = runtime_dir.iterdir()
        os.kill(coordinator.pid, signum)
        coordinator.wait(10)
        killed_at = time.monotonic()
        while any(_alive(child) for child in children) and time.monotonic() - killed_at < GONE_WITHIN_S:
            time.sleep(0.05)
        survivors = [f"{child.pid} {child.name()}" for child in children if _alive(child)]
        assert survivors == [], f"left running {GONE_WITHIN_S:g}s after the coordinator died"
    finally:
        if coordinator.poll() is None:
            coordinator.kill()
        coordinator.communicate()
    if signum == signal.SIGTERM:
        # Stopped in order: it wrote what it measured, removed its own folder, and said how it ended.
        assert coordinator.returncode == 143
        assert not dead_folder.exists()
        assert (tmp_path / "killed" / "smp.json").is_file()
        return
    assert dead_folder.is_dir()  # a killed process cleans nothing up itself
    _the_next_run_reaps_only_the_dead(server, runtime_dir, dead_folder, tmp_path)


def _the_next_run_reaps_only_the_dead(
    server: ServerHandle, runtime_dir: Path, dead_folder: Path, tmp_path: Path
) -> None:
    # Beside it: a folder of a live coordinator (this test process), and a dead coordinator's folder
    # whose pid file names a process that is not its Redis (a pid reused since): both left alone.
    live_folder = run_folders.create_run_folder()
    impostor = subprocess.Popen(["sleep", "60"])
    try:
        fake_dead = runtime_dir / f"c{_dead_pid()}-{round(time.time() * 100)}-feed00"
        fake_dead.mkdir()
        (fake_dead / run_folders.REDIS_PID_FILE).write_text(
            json.dumps({"pid": impostor.pid, "started": psutil.Process(impostor.pid).create_time()})
        )
        following = _meshload_run(server.url, runtime_dir, tmp_path / "following", "--rate", "10", "-d", "0.5s")
        _, stderr = following.communicate(timeout=90)
        assert following.returncode == 0, stderr[-2000:]
        assert not dead_folder.exists() and not fake_dead.exists()
        assert live_folder.is_dir()
        assert impostor.poll() is None, "the reaper killed a process that was not a dead run's Redis"
        assert list(runtime_dir.iterdir()) == [live_folder]  # the following run removed its own folder
    finally:
        impostor.kill()
        impostor.wait()


def _dead_pid() -> int:
    """A pid no process has right now."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid
