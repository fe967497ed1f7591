"""Secrets and fleets, with real processes and a real redis-server: a fleet worker refuses a share
outside its allowlist or ceilings and the coordinator says so in one line before anyone sent
anything; spawned workers never carry the Redis password on their command line; and the README's
least-privilege ACL users run a whole run (its results kept in Redis) while being refused everything
else, and the results reader fetches those results and nothing more."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import redis
from tests.support.http_servers import ServerHandle
from tests.support.redis_server import RedisServer

from meshload.coordinator.placement import idle_fleet_workers
from meshload.coordinator.run import RunOptions, execute_run
from meshload.pipeline import wire
from meshload.pipeline.results_store import fetch_results, list_results
from meshload.scenarios.plan import Plan

pytestmark = pytest.mark.timeout(120)

README = Path(__file__).resolve().parents[2] / "README.md"


def _meshload(*args: str, environment: dict[str, str] | None = None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHLOAD_")} | (environment or {})
    command = [sys.executable, "-m", "meshload", *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_refusals_reach_the_coordinators_output_before_anyone_sends(http_server: ServerHandle, fleet_factory) -> None:
    with RedisServer() as server:
        client = server.client()
        fleet = fleet_factory(server.url)
        fleet.start("w-open")
        fleet.start("w-rate", "--max-rate", "50")
        fleet.start(
            "w-elsewhere", environment={"MESHLOAD_REDIS": server.url, "MESHLOAD_WORKER_ALLOW_TARGETS": "10.0.0.0/8"}
        )
        fleet.wait_registered(client, ["w-elsewhere", "w-open", "w-rate"])

        run = _meshload(
            "run", http_server.url, "--rate", "300", "-d", "2s", "-w", "3", "--redis", server.url, "--no-live"
        )
        _, stderr = run.communicate(timeout=60)

        assert run.returncode == 1
        errors = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert errors == [
            "error: worker w-elsewhere refused the run: target 127.0.0.1 is not in its allowlist (10.0.0.0/8); "
            "start it with --allow-target 127.0.0.1 to allow it; "
            "worker w-rate refused the run: its share is 100 req/s, above its --max-rate 50 req/s; "
            "use more workers or less load"
        ], stderr
        assert "Traceback" not in stderr
        time.sleep(wire.HEARTBEAT_INTERVAL_S * 3)  # past the start the run would have had
        assert http_server.counters()["requests"] == 0  # w-open accepted its share and dropped it
        assert idle_fleet_workers(client) == ["w-elsewhere", "w-open", "w-rate"]  # all serving again
        client.close()


def test_spawned_workers_get_the_redis_password_outside_their_command_line(http_server: ServerHandle) -> None:
    password = "pw-Zk83-not-for-ps"
    with RedisServer(password=password) as server:
        run = _meshload(
            "run", http_server.url, "--rate", "20", "-d", "4s", "-w", "2", "--placement", "local", "--no-live",
            environment={"MESHLOAD_REDIS": server.url},
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while http_server.counters()["requests"] < 5:
                assert run.poll() is None and time.monotonic() < deadline, run.communicate()[1][-2000:]
                time.sleep(0.1)
            workers = [p for p in psutil.Process(run.pid).children() if "worker" in p.cmdline()]
            assert len(workers) == 2
            for worker in workers:
                cmdline = Path(f"/proc/{worker.pid}/cmdline").read_bytes()
                assert password.encode() not in cmdline and b"--redis" not in cmdline
                assert f"{wire.REDIS_URL_ENV}={server.url}".encode() in Path(f"/proc/{worker.pid}/environ").read_bytes()
        finally:
            _, stderr = run.communicate(timeout=60)
        assert run.returncode == 0, stderr[-2000:]


def test_least_privilege_acl_users_run_a_run_and_nothing_else(http_server: ServerHandle, fleet_factory) -> None:
    with RedisServer(password="admin-pw") as server:
        admin = server.client()
        readme = README.read_text()
        users = (
            ("meshload-worker", wire.WORKER_ACL),
            ("meshload-coordinator", wire.COORDINATOR_ACL),
            ("meshload-results", wire.RESULTS_READER_ACL),
        )
        for user, rules in users:
            assert f"ACL SETUSER {user} on >PASSWORD {rules}" in readme  # what the README tells users to do
            admin.execute_command("ACL", "SETUSER", user, "on", f">{user}-pw", *rules.split())
        admin.set("app:secret", "not yours")
        admin.execute_command("ACL", "LOG", "RESET")
        worker_url = f"redis://meshload-worker:meshload-worker-pw@127.0.0.1:{server.port}/0"
        coordinator_url = f"redis://meshload-coordinator:meshload-coordinator-pw@127.0.0.1:{server.port}/0"

        fleet = fleet_factory(worker_url)
        for worker_id in ("acl-a", "acl-b"):
            fleet.start(worker_id, environment={"MESHLOAD_REDIS": worker_url})
        fleet.wait_registered(admin, ["acl-a", "acl-b"])
        plan = Plan(targets=[{"url": http_server.url}], load={"kind": "open", "rate": 60.0}, duration_s=1.0)
        result = execute_run(plan, RunOptions(workers=2, redis_url=coordinator_url, placement="fleet", live=False))

        assert result.completed == http_server.counters()["requests"] == 60 and not result.errors
        assert sorted(w.id for w in result.workers) == ["acl-a", "acl-b"] and not any(w.lost for w in result.workers)
        assert not [reason for reason in result.validity if "record" in reason], result.validity
        assert admin.execute_command("ACL", "LOG") == []  # the run needed nothing the rules refuse
        for url in (worker_url, coordinator_url):
            with redis.Redis.from_url(url) as limited:
                for command in (("FLUSHALL",), ("GET", "app:secret"), ("KEYS", "*"), ("CONFIG", "GET", "*")):
                    with pytest.raises(redis.exceptions.NoPermissionError):
                        limited.execute_command(*command)
        with redis.Redis.from_url(worker_url) as worker_client, pytest.raises(redis.exceptions.NoPermissionError):
            worker_client.xreadgroup("coordinator", "x", {"meshload:run:any:records": ">"})  # a coordinator's
        assert admin.get("app:secret") == b"not yours"

        reader_url = f"redis://meshload-results:meshload-results-pw@127.0.0.1:{server.port}/0"
        with redis.Redis.from_url(reader_url) as reader:
            kept = fetch_results(reader, result.run_id)  # kept by the coordinator's user, read by the reader
            assert kept is not None and json.loads(kept.files["smp.json"])["meshload"]["run_id"] == result.run_id
            assert [meta.run_id for meta in list_results(reader)] == [result.run_id]
            refused: list[tuple[str, ...]] = [
                ("HGETALL", wire.fleet_key()),
                ("XRANGE", wire.RunKeys(result.run_id).records, "-", "+"),
                ("DEL", wire.results_key(result.run_id)),
                ("HSET", wire.results_key(result.run_id), "smp.json", "forged"),
            ]
            for forbidden in refused:
                with pytest.raises(redis.exceptions.NoPermissionError):
                    reader.execute_command(*forbidden)
        assert 0 < admin.pttl(wire.results_key(result.run_id)) <= wire.DEFAULT_RESULTS_TTL_S * 1000
        admin.close()
