"""`meshload run --locustfile` as a user runs it, with real processes: the coordinator, its local
workers (each running the users in a gevent child of its own), a private Redis and a counting HTTP
server; a fleet worker that refuses a locustfile it cannot import, before anyone sends, and serves the
next run; and the built-in BookInfo journey against the real local testbed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from tests.coordinator.test_coordinator_runs import StreamObserver
from tests.support.http_servers import ServerHandle
from tests.support.redis_server import RedisServer
from tests.support.run_checks import check_run_folder

from meshload.coordinator.placement import idle_fleet_workers
from meshload.coordinator.run import RunOptions, execute_run
from meshload.errors import RunError
from meshload.scenarios.options import plan_from_options
from meshload.testbed import Testbed

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

LOCUSTFILES = Path(__file__).resolve().parents[1] / "worker" / "locustfiles"
JOURNEY = [
    "anonymous: /productpage",
    "api: details",
    "api: products",
    "api: ratings",
    "api: reviews",
    "jason: /productpage",
    "sign in",
    "sign out",
]


def meshload(*args: str, env: dict[str, str] | None = None, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MESHLOAD_")} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "meshload", *args, "--no-live", "--no-history"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def test_two_workers_run_a_locustfiles_users_open_loop_and_count_what_the_server_counts(
    http_server: ServerHandle, tmp_path: Path
) -> None:
    """The locustfile is written for the plugin (its own open_loop at 1000 tasks/s): in meshload's
    workers the plugin stands aside and --rate paces the users, split across the two workers."""
    out = tmp_path / "out"
    locustfile = LOCUSTFILES / "with_plugin.py"
    run = meshload(
        "run", http_server.url, "--locustfile", str(locustfile), "--rate", "30", "-d", "2s", "--warmup", "1s",
        "--workers", "2", "--connections", "8", "-o", str(out),
    )  # fmt: skip

    assert run.returncode == 0, run.stderr[-3000:]
    block = check_run_folder(out)["meshload"]
    # 30 tasks/s for 3 s, one request each: all sent, all answered, all counted by both ends.
    assert block["requests"] + block["warmup"]["completed"] == http_server.counters()["requests"] == 90
    assert block["requests"] == block["sent"] == 60 and block["errors"] == {} and block["missed"] == 0
    workers = block["workers"]
    assert len(workers) == 2 and all(w["requests"] == 30 and not w["lost"] for w in workers)
    assert set(block["by_name"]) == {"read"} and block["by_name"]["read"]["requests"] == 60
    assert block["plan"]["locust"]["file"] == str(locustfile) and block["plan"]["load"]["rate"] == 30
    report = (out / "report.html").read_text()
    assert "Open loop: 30 tasks/s" in report and "with_plugin.py" in report and 'id="names"' in report
    assert "30 tasks/s constant for 2s after 1s warm-up from the users of" in run.stderr
    assert "meshload: " not in run.stderr  # the plugin wrote nothing of its own
    assert not any(tmp_path.glob("meshload-locust-*"))


def test_a_locustfile_that_does_not_import_is_one_line_before_any_load(
    http_server: ServerHandle, tmp_path: Path
) -> None:
    broken = tmp_path / "shop.py"
    broken.write_text(
        "from locust import HttpUser, task\n\n\nclass Shopper(HttpUser):\n    wait_time = between(1, 2)\n"
    )
    run = meshload(
        "run", http_server.url, "--locustfile", str(broken), "--rate", "10", "-d", "2s", "-o", str(tmp_path / "o")
    )

    assert run.returncode == 2
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert lines == [
        f"error: --locustfile: {broken}:5: the locustfile does not import (NameError: name 'between' is not "
        "defined); fix it, or install what it imports"
    ], run.stderr
    assert http_server.counters()["requests"] == 0 and not (tmp_path / "o").exists()


def test_a_fleet_worker_refuses_a_locustfile_it_cannot_import_then_serves_the_next_run(
    http_server: ServerHandle, tmp_path: Path, fleet_factory
) -> None:
    missing = tmp_path / "needs_a_module.py"
    missing.write_text("import module_only_elsewhere\n")
    with RedisServer() as server:
        client = server.client()
        fleet = fleet_factory(server.url)
        fleet.start("w-locust")
        fleet.wait_registered(client, ["w-locust"])
        options = RunOptions(workers=1, redis_url=server.url, placement="fleet", live=False, out_dir=tmp_path / "out")

        bad = plan_from_options(http_server.url, None, rate=10, duration_s=1, locustfile=str(missing))
        with pytest.raises(RunError) as refused:
            execute_run(bad, options)
        assert str(refused.value) == (
            f"worker w-locust refused the run: {missing}:1: the locustfile does not import "
            "(ModuleNotFoundError: No module named 'module_only_elsewhere'); fix it, or install what it imports"
        )
        assert http_server.counters()["requests"] == 0
        deadline = time.monotonic() + 10
        while idle_fleet_workers(client) != ["w-locust"]:  # it answers its next heartbeat as idle
            assert time.monotonic() < deadline, "the worker did not come back to serve"
            time.sleep(0.1)

        good = plan_from_options(
            http_server.url, None, concurrency=2, duration_s=1.5, locustfile=str(LOCUSTFILES / "two_steps.py")
        )
        result = execute_run(good, options)
        client.close()

    assert result.completed == http_server.counters()["requests"] > 20
    assert [w.id for w in result.workers] == ["w-locust"] and result.errors == {}
    assert result.corrected.percentiles_ms() == result.uncorrected.percentiles_ms()  # closed loop


def test_a_worker_killed_mid_run_is_lost_its_users_process_leaves_and_the_other_does_its_share(
    http_server: ServerHandle, tmp_path: Path, fleet_factory
) -> None:
    with RedisServer() as server:
        client = server.client()
        fleet = fleet_factory(server.url)
        processes = {worker_id: fleet.start(worker_id) for worker_id in ("k0", "k1")}
        fleet.wait_registered(client, ["k0", "k1"])
        plan = plan_from_options(
            http_server.url, None, rate=40, duration_s=4, connections=8, locustfile=str(LOCUSTFILES / "one_request.py")
        )
        options = RunOptions(workers=2, redis_url=server.url, placement="fleet", live=False, run_id="killed-locust")
        users_process: list[psutil.Process] = []

        def kill_k1_after_two_records(observer: StreamObserver) -> None:
            observer.wait_for("k1", 2)
            children = psutil.Process(processes["k1"].pid).children()
            users_process.extend(child for child in children if "meshload.worker.gevent_main" in child.cmdline())
            os.kill(processes["k1"].pid, signal.SIGKILL)

        with StreamObserver(server.url, "killed-locust") as observer:
            killer = threading.Thread(target=kill_k1_after_two_records, args=(observer,), daemon=True)
            killer.start()
            result = execute_run(plan, options)
            killer.join(5)
        client.close()

    by_id = {worker.id: worker for worker in result.workers}
    assert by_id["k1"].lost and not by_id["k0"].lost and result.degraded
    assert by_id["k1"].records == len(observer.seqs["k1"]) >= 2  # what it sent before it died is kept
    assert by_id["k0"].requests == 80  # 20 tasks/s for 4 s: the survivor's whole share
    # The killed worker's users ran in a gevent process of its own; that process saw its parent go
    # (the end of its stdin) and left by itself.
    assert len(users_process) == 1
    gone, alive = psutil.wait_procs(users_process, timeout=10)
    assert alive == [] and {child.pid for child in gone} == {child.pid for child in users_process}


def test_the_bookinfo_journey_runs_in_meshloads_workers_against_the_testbed(tmp_path: Path) -> None:
    state = tmp_path / "testbed"
    out = tmp_path / "out"
    try:
        run = meshload(
            "run", "--testbed", "sidecar", "--locustfile", "bookinfo", "--rate", "2", "-d", "4s", "--warmup", "1s",
            "--connections", "4", "-o", str(out), env={"MESHLOAD_TESTBED_DIR": str(state)}, timeout_s=150,
        )  # fmt: skip
    finally:
        assert Testbed(state).down() == []

    assert run.returncode == 0, run.stderr[-3000:]
    block = check_run_folder(out)["meshload"]
    names = block["by_name"]
    assert sorted(names) == JOURNEY
    visits = names["anonymous: /productpage"]["requests"]
    assert visits == 8  # 2 visits/s for the 4 measured seconds, each finished before the run ended
    for step in JOURNEY:
        assert names[step]["requests"] == visits, step
        assert names[step]["failures"] == 0 and names[step]["errors"] == 0, step
    assert set(block["status_codes"]) <= {"200", "302"}
    assert block["labels"]["function"] == "sidecar"
    assert json.loads((out / "smp.json").read_text())["meshload"]["plan"]["locust"]["file"] == "bookinfo"
