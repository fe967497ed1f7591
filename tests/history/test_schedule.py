"""`meshload schedule` as a user runs it: a real `schedule serve` process firing real meshload commands
on schedules due every few seconds (cron with seconds), stopped with SIGTERM."""

from __future__ import annotations

import itertools
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

from meshload.history.records import now_ms
from meshload.history.schedules import Firing, Schedule
from meshload.history.store import open_store

pytestmark = pytest.mark.timeout(150)

MESHLOAD = [sys.executable, "-c", "from meshload.cli import main; main()"]


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MESHLOAD_")}


def meshload(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**_environment(), **(env or {})}
    return subprocess.run(
        [*MESHLOAD, *args], cwd=cwd, env=environment, capture_output=True, text=True, check=False, timeout=60
    )


def serve(store: str, runs_dir: Path, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*MESHLOAD, "schedule", "serve", "--store", store, "--runs-dir", str(runs_dir)],
        cwd=cwd,
        env=_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition: Callable[[], object], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def stop(server: subprocess.Popen[str]) -> str:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(45)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
        raise
    assert server.stderr is not None
    return server.stderr.read()


@pytest.fixture
def http_target() -> Iterator[ServerHandle]:
    handle = start_server("ok")
    yield handle
    handle.stop()


@pytest.mark.slow
def test_serve_runs_one_at_a_time_skips_overlaps_records_each_firing_and_stops_on_sigterm(
    http_target: ServerHandle, tmp_path: Path
) -> None:
    store = str(tmp_path / "history.db")
    runs_dir = tmp_path / "scheduled"
    # Due every 2 s; each run takes longer (start-up plus 2 s of load), so some due times find it running.
    added = meshload(
        "schedule", "add", "soak", "--cron", "*/2 * * * * *", "--store", store,
        "--", "run", http_target.url, "--rate", "20", "--duration", "2s", "--no-live",
        cwd=tmp_path,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "schedule soak added" in added.stderr

    server = serve(store, runs_dir, tmp_path)
    process = psutil.Process(server.pid)
    try:
        with open_store(store) as opened:

            def statuses() -> list[str]:
                return [firing.status for firing in opened.firings("soak")]

            wait_for(lambda: statuses().count("succeeded") >= 2 and "skipped" in statuses(), 90, "two runs and a skip")
            wait_for(lambda: statuses() and statuses()[0] == "running", 30, "a run in progress")
            children = process.children(recursive=True)
            assert children, "the running command is a child of the server"
            log = stop(server)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()

    assert server.returncode == 0, log
    assert "SIGTERM: stopping" in log and "schedule server stopped" in log
    psutil.wait_procs(children, timeout=10)
    assert not [child for child in children if child.is_running() and child.status() != psutil.STATUS_ZOMBIE]

    with open_store(store) as opened:
        firings = sorted(opened.firings("soak"), key=lambda firing: firing.due_unix_ms)
        records = opened.records()
    ran = [firing for firing in firings if firing.started_unix_ms is not None]
    assert [firing.status for firing in ran][-1] == "interrupted"
    assert all(firing.status == "succeeded" and firing.exit_code == 0 for firing in ran[:-1])
    # One at a time: each run ended before the next began.
    for earlier, later in itertools.pairwise(ran):
        assert earlier.ended_unix_ms is not None and later.started_unix_ms is not None
        assert earlier.ended_unix_ms <= later.started_unix_ms
    # Every skipped due time fell while a run was going.
    skipped = [firing for firing in firings if firing.status == "skipped"]
    assert skipped
    for firing in skipped:
        assert any(
            run.started_unix_ms - 1000 <= firing.due_unix_ms <= (run.ended_unix_ms or now_ms()) + 1000  # type: ignore[operator]
            for run in ran
        ), firing
        assert "soak (due" in firing.detail and "was still running" in firing.detail
    # Each run's folder, log, exit code and its record in the same store.
    succeeded = [firing for firing in ran if firing.status == "succeeded"]
    for firing in succeeded:
        assert firing.out_dir is not None and firing.out_dir.startswith(str(runs_dir / "soak"))
        assert (Path(firing.out_dir) / "smp.json").is_file()
        assert Path(firing.log_path or "").is_file()
        assert firing.command[-2:] == ["--out", firing.out_dir]
    assert sorted(record.location for record in records) == sorted(str(Path(f.out_dir).resolve()) for f in succeeded)  # type: ignore[arg-type]

    shown = meshload("schedule", "log", "soak", "--json", "--store", store, cwd=tmp_path)
    assert {entry["status"] for entry in json.loads(shown.stdout)} >= {"succeeded", "skipped", "interrupted"}


def test_missed_due_times_are_logged_once_not_replayed_and_an_idle_server_stops_at_once(tmp_path: Path) -> None:
    store = str(tmp_path / "history.db")
    with open_store(store) as opened:
        # Created 11 s ago, due every 2 s, and no server ran since: 5 due times or more were missed.
        created_ms = now_ms() - 11_000
        opened.add_schedule(Schedule("quick", "*/2 * * * * *", ["history", "--limit", "1"], "UTC", created_ms))
    started_ms = now_ms()
    server = serve(store, tmp_path / "scheduled", tmp_path)
    try:
        with open_store(store) as opened:

            def fired() -> list[Firing]:
                return [firing for firing in opened.firings("quick") if firing.status == "succeeded"]

            wait_for(lambda: len(fired()) >= 2, 40, "two firings")
            log = stop(server)
            firings = opened.firings("quick")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()

    assert server.returncode == 0, log
    missed = [firing for firing in firings if firing.status == "missed"]
    assert len(missed) == 1
    first, last = missed[0].due_unix_ms, missed[0].last_due_unix_ms
    assert last is not None and created_ms < first <= created_ms + 2000 and last > started_ms - 2000
    assert missed[0].missed_count == (last - first) // 2000 + 1 >= 5
    assert "no schedule server was running" in missed[0].detail
    assert "not replayed" in log
    ran = [firing for firing in firings if firing.started_unix_ms is not None]
    # No burst: every firing is for a due time after the server started, 2 s apart or more.
    dues = sorted(firing.due_unix_ms for firing in ran)
    assert dues[0] >= started_ms
    assert all(later - earlier >= 2000 for earlier, later in itertools.pairwise(dues))
    assert all(firing.out_dir is None and firing.exit_code == 0 for firing in fired_only(ran))


def fired_only(firings: list[Firing]) -> list[Firing]:
    return [firing for firing in firings if firing.status == "succeeded"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["add", "n", "--cron", "61 * * * *", "--", "history"], "--cron '61 * * * *' is not a cron expression"),
        (["add", "n", "--cron", "0 3 * * *", "--tz", "Mars/Olympus", "--", "history"], "--tz 'Mars/Olympus'"),
        (["add", "n", "--cron", "0 3 * * *", "--", "launch"], "'launch' is not a meshload command a schedule can fire"),
        (["add", "n", "--cron", "0 3 * * *", "--", "schedule", "serve"], "'schedule' is not a meshload command"),
        (
            ["add", "n", "--cron", "0 3 * * *", "--", "run", "http://127.0.0.1:9/", "--rate", "fast"],
            "the scheduled command `meshload run http://127.0.0.1:9/ --rate fast`: Invalid value for '--rate'",
        ),
        (["add", "n", "--cron", "0 3 * * *"], "give the command to fire after --"),
        (["remove", "nothing"], "no schedule named 'nothing'"),
    ],
)
def test_bad_schedules_exit_2_with_one_line(args: list[str], expected: str, tmp_path: Path) -> None:
    done = meshload("schedule", *args, cwd=tmp_path, env={"MESHLOAD_STORE": str(tmp_path / "h.db")})
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], done.stderr


def test_add_list_and_remove(tmp_path: Path) -> None:
    store = str(tmp_path / "h.db")
    added = meshload(
        "schedule", "add", "nightly", "--cron", "0 3 * * *", "--tz", "Europe/Paris", "--store", store,
        "--", "run", "--scenario", "bookinfo-productpage", "--rate", "100",
        cwd=tmp_path,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    again = meshload(
        "schedule", "add", "nightly", "--cron", "0 4 * * *", "--store", store, "--", "history", cwd=tmp_path
    )
    assert again.returncode == 2 and "a schedule named 'nightly' exists" in again.stderr

    listed = meshload("schedule", "list", "--json", "--store", store, cwd=tmp_path)
    (entry,) = json.loads(listed.stdout)
    assert entry["command"] == ["run", "--scenario", "bookinfo-productpage", "--rate", "100"]
    assert (entry["cron"], entry["timezone"], entry["last_firing"]) == ("0 3 * * *", "Europe/Paris", None)
    due = time.gmtime(entry["next_due_unix_ms"] / 1000)
    assert (due.tm_min, due.tm_sec) == (0, 0) and due.tm_hour in (1, 2)  # 03:00 in Paris is 01:00 or 02:00 UTC
    table = meshload("schedule", "list", "--store", store, cwd=tmp_path)
    assert "meshload run --scenario bookinfo-productpage --rate 100" in table.stdout

    removed = meshload("schedule", "remove", "nightly", "--store", store, cwd=tmp_path)
    assert removed.returncode == 0 and "schedule nightly removed" in removed.stderr
    assert json.loads(meshload("schedule", "list", "--json", "--store", store, cwd=tmp_path).stdout) == []
