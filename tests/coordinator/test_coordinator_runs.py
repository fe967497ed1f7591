"""Whole runs through Redis with real worker processes and a real HTTP server: the requests the server
answered are the requests the report counts, split evenly; a worker killed with SIGKILL is marked lost
and keeps what it sent; a Redis outage mid-run loses nothing and counts nothing twice."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Self, cast

import psutil
import pytest
import redis
from tests.support.redis_server import RedisServer
from tests.support.run_checks import check_run_folder

from meshload.coordinator.mesh.base import MeshAdapter
from meshload.coordinator.placement import idle_fleet_workers
from meshload.coordinator.run import RunOptions, execute_run
from meshload.errors import RunError
from meshload.pipeline import wire
from meshload.results.interval import decode_record
from meshload.scenarios.plan import ClosedLoop, OpenLoop, Plan, Target
from meshload.worker.engine_process import ENGINE_PROCESS_ENV

pytestmark = pytest.mark.timeout(90)


def open_plan(url: str, rate: float, duration_s: float, warmup_s: float = 0.0) -> Plan:
    return Plan(targets=(Target(url=url),), load=OpenLoop(rate=rate), duration_s=duration_s, warmup_s=warmup_s)


def answered(server) -> int:
    # The engine may still be reading the last responses when the server counts; read after the run.
    return server.counters()["requests"]


def all_completed(result) -> int:
    return result.completed + result.warmup_completed


class StreamObserver:
    """Reads a run's records stream on its own (plain XREAD, no group): what workers really sent."""

    def __init__(self, redis_url: str, run_id: str) -> None:
        self._client = redis.Redis.from_url(redis_url, socket_timeout=10)
        self._key = wire.RunKeys(run_id).records
        self.seqs: dict[str, set[int]] = defaultdict(set)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        last = "0-0"
        while not self._stop.is_set():
            try:
                reply = self._client.xread({self._key: last}, block=100, count=1000)
            except redis.exceptions.RedisError:
                time.sleep(0.05)
                continue
            for _key, entries in cast(list[Any], reply or []):
                for entry_id, fields in entries:
                    last = entry_id
                    record = decode_record(fields[wire.RECORD_FIELD])
                    self.seqs[record.worker_id].add(record.seq)

    def wait_for(self, worker_id: str, records: int, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.seqs[worker_id]) < records:
            assert time.monotonic() < deadline, f"no records from {worker_id}"
            time.sleep(0.02)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._client.close()


class ServerProcessMesh:
    """A MeshAdapter whose only component is the HTTP server process, measured for real with psutil
    (the testbed's `ProcessSampler`): enough to see when the coordinator samples and what it keeps."""

    name = "test-server"

    def __init__(self, server) -> None:
        self._server = server
        self.windows: list[tuple[float, float]] = []

    @property
    def ingress_url(self) -> str:
        return self._server.url

    def functions(self) -> list[str]:
        return ["none"]

    def apply(self, function: str, params: dict[str, str] | None = None) -> None:
        pass

    def current_function(self) -> str:
        return "none"

    def start_sampling(self, interval_s: float = 1.0):
        from meshload.coordinator.mesh.resources import ProcessSampler
        from meshload.results.run_result import MeshUsage

        mesh = self
        sampler = ProcessSampler(lambda: {"app": [self._server.process.pid]}, interval_s=0.25).start()
        started = time.monotonic()

        class Sampling:
            def stop(self) -> MeshUsage:
                usage = sampler.stop()
                mesh.windows.append((started, time.monotonic()))
                return MeshUsage(mesh="test-server", function="none", applications=usage["app"])

        return Sampling()


def test_two_local_workers_on_a_private_redis_count_every_request_and_write_the_reports(http_server, tmp_path) -> None:
    out = tmp_path / "out"
    plan = open_plan(http_server.url, rate=200, duration_s=2.0, warmup_s=0.5)
    mesh = ServerProcessMesh(http_server)
    # A stand-in for what a run asks of its mesh: sampling (studies use the rest of `MeshAdapter`).
    result = execute_run(plan, RunOptions(workers=2, out_dir=out, live=False, mesh=cast(MeshAdapter, mesh)))

    assert all_completed(result) == answered(http_server) > 0
    # A healthy server answers everything. The measured part completes exactly its own sends plus the
    # requests still in flight when the warm-up ended (a handful at 200 rps, more on a busy machine).
    assert 0 <= result.completed - result.sent <= 10 and not result.errors
    requests = sorted(worker.requests for worker in result.workers)
    assert len(requests) == 2 and requests[1] - requests[0] <= 1  # constant arrivals interleave exactly
    assert sum(requests) == result.completed
    assert not any(worker.lost for worker in result.workers)
    assert all(abs(worker.clock_offset_ms) < 50 for worker in result.workers)
    assert 350 <= result.completed <= 450  # 200/s for 2 s, measured part only

    smp = check_run_folder(out)
    block = smp["meshload"]
    assert block["requests"] == result.completed
    assert len(block["workers"]) == 2 and {w["lost"] for w in block["workers"]} == {False}
    # The mesh was sampled once, over the measured window only (not the warm-up, not the wind-down).
    assert len(mesh.windows) == 1
    window_s = mesh.windows[0][1] - mesh.windows[0][0]
    assert plan.duration_s - 0.3 < window_s < plan.duration_s + 0.5
    assert result.mesh is not None and result.mesh.applications.count == 1
    # The server's memory is there; its CPU over 2 s may be under the kernel's 10 ms accounting tick (a
    # few µs per request), so only its sign is checked here: the sampler's CPU figures are checked
    # against Prometheus's on the testbed (tests/mesh/test_prometheus_sampler.py).
    assert result.mesh.applications.cpu_mcores >= 0 and result.mesh.applications.mem_mb > 0
    assert smp["mesh_config"]["profile"] == "none"
    # The private redis-server and the worker processes are gone.
    leftovers = [p.name() for p in psutil.Process().children(recursive=True) if p.pid != http_server.process.pid]
    assert leftovers == []


def test_a_worker_whose_engine_runs_in_a_child_delivers_its_records_as_the_child_encoded_them(
    http_server, monkeypatch
) -> None:
    """The records come from the engine's own process encoded and go to Redis as they came; the requests
    the report counts are the requests the server answered."""
    monkeypatch.setenv(ENGINE_PROCESS_ENV, "always")  # the worker processes inherit it
    plan = open_plan(http_server.url, rate=300, duration_s=2.0)
    result = execute_run(plan, RunOptions(workers=1, live=False))

    assert not result.errors and not any(worker.lost for worker in result.workers)
    assert all_completed(result) == answered(http_server) == 600
    assert result.workers[0].requests == result.completed == 600


def test_a_fleet_on_tls_redis_with_a_password_serves_open_and_closed_loop_runs_evenly(
    http_server, fleet_factory
) -> None:
    with RedisServer(password="fleet-secret", tls=True) as server:
        assert server.url.startswith("rediss://:fleet-secret@")
        client = server.client()
        fleet = fleet_factory(server.url)
        ids = ["node-a", "node-b", "node-c"]
        for worker_id in ids:
            fleet.start(worker_id)
        fleet.wait_registered(client, ids)
        assert idle_fleet_workers(client) == ids

        plan = open_plan(http_server.url, rate=240, duration_s=2.0)
        result = execute_run(plan, RunOptions(workers=3, redis_url=server.url, placement="fleet", live=False))
        after_open = answered(http_server)
        assert all_completed(result) == after_open
        assert [worker.id for worker in result.workers] == ids
        requests = [worker.requests for worker in result.workers]
        assert max(requests) - min(requests) <= 1 and sum(requests) == result.completed
        hosts = result.environment["worker_hosts"]
        assert isinstance(hosts, dict) and set(hosts) == set(ids)

        # The long-lived workers are idle again and take the next run, a closed loop this time.
        deadline = time.monotonic() + 5
        while idle_fleet_workers(client) != ids and time.monotonic() < deadline:
            time.sleep(0.05)
        closed = Plan(targets=(Target(url=http_server.url),), load=ClosedLoop(concurrency=3), duration_s=1.0)
        result = execute_run(closed, RunOptions(workers=3, redis_url=server.url, placement="fleet", live=False))
        assert all_completed(result) == answered(http_server) - after_open > 100
        assert all(worker.requests > 0 for worker in result.workers)
        # The run's keys are gone from the shared Redis (only the stop marker lingers, with a TTL).
        leftover = [wire.reply_text(key) for key in client.keys(f"{wire.KEY_PREFIX}:run:*")]
        assert all(key.endswith(":stop") for key in leftover)
        client.close()


def test_a_worker_killed_mid_run_is_marked_lost_and_keeps_every_record_it_sent(
    http_server, fleet_factory, tmp_path
) -> None:
    with RedisServer() as server:
        client = server.client()
        fleet = fleet_factory(server.url)
        ids = ["k0", "k1", "k2"]
        processes = {worker_id: fleet.start(worker_id) for worker_id in ids}
        fleet.wait_registered(client, ids)
        run_id = "killed-run"
        plan = open_plan(http_server.url, rate=150, duration_s=3.5)
        options = RunOptions(
            workers=3, redis_url=server.url, placement="fleet", live=False, run_id=run_id, out_dir=tmp_path / "out"
        )
        outcome: dict[str, object] = {}

        def kill_k1_after_two_records(observer: StreamObserver) -> None:
            observer.wait_for("k1", 2)
            os.kill(processes["k1"].pid, signal.SIGKILL)
            outcome["killed_at"] = time.monotonic()

        with StreamObserver(server.url, run_id) as observer:
            killer = threading.Thread(target=kill_k1_after_two_records, args=(observer,), daemon=True)
            killer.start()
            result = execute_run(plan, options)
            killer.join(5)
        assert "killed_at" in outcome

        by_id = {worker.id: worker for worker in result.workers}
        assert by_id["k1"].lost and not by_id["k0"].lost and not by_id["k2"].lost
        assert result.degraded and result.validity
        assert by_id["k1"].records == len(observer.seqs["k1"]) >= 2  # every record it had sent is kept
        assert by_id["k0"].records == len(observer.seqs["k0"])
        # The survivors did their whole share; the report says who was lost.
        assert by_id["k0"].requests == pytest.approx(175, abs=2)
        smp = json.loads((tmp_path / "out" / "smp.json").read_text())
        assert {w["id"]: w["lost"] for w in smp["meshload"]["workers"]} == {"k0": False, "k1": True, "k2": False}
        client.close()


def test_a_redis_outage_mid_run_loses_nothing_and_counts_nothing_twice(http_server) -> None:
    with RedisServer() as server:
        run_id = "outage-run"
        plan = open_plan(http_server.url, rate=200, duration_s=3.0)
        options = RunOptions(workers=2, redis_url=server.url, placement="local", live=False, run_id=run_id)
        paused_s: list[float] = []

        def outage(observer: StreamObserver) -> None:
            observer.wait_for(f"{run_id}-w0", 1)
            server.pause()
            time.sleep(1.5)
            server.resume()
            paused_s.append(1.5)

        with StreamObserver(server.url, run_id) as observer:
            thread = threading.Thread(target=outage, args=(observer,), daemon=True)
            thread.start()
            result = execute_run(plan, options)
            thread.join(10)
        assert paused_s == [1.5]

        assert all_completed(result) == answered(http_server)
        assert not any(worker.lost for worker in result.workers)
        for worker in result.workers:
            seqs = [record.seq for record in result.records if record.worker_id == worker.id]
            assert sorted(seqs) == list(range(len(seqs))) and worker.records == len(seqs) >= 3
        assert result.completed == sum(worker.requests for worker in result.workers)


def test_abort_on_worker_loss_stops_the_others_and_keeps_partial_results(http_server, fleet_factory, tmp_path) -> None:
    with RedisServer() as server:
        client = server.client()
        fleet = fleet_factory(server.url)
        processes = {worker_id: fleet.start(worker_id) for worker_id in ("a0", "a1")}
        fleet.wait_registered(client, ["a0", "a1"])
        run_id = "aborted-run"
        plan = open_plan(http_server.url, rate=100, duration_s=20.0)
        options = RunOptions(
            workers=2,
            redis_url=server.url,
            placement="fleet",
            live=False,
            run_id=run_id,
            on_worker_loss="abort",
            out_dir=tmp_path / "out",
        )
        with StreamObserver(server.url, run_id) as observer:

            def kill() -> None:
                observer.wait_for("a1", 1)
                os.kill(processes["a1"].pid, signal.SIGKILL)

            threading.Thread(target=kill, daemon=True).start()
            started = time.monotonic()
            with pytest.raises(RunError, match=r"run aborted: worker a1 lost .*--on-worker-loss abort"):
                execute_run(plan, options)
            took_s = time.monotonic() - started
        assert took_s < 15.0  # far short of the planned 20 s
        smp = json.loads((tmp_path / "out" / "smp.json").read_text())
        assert smp["meshload"]["valid"] is False or any("lost" in r for r in smp["meshload"]["validity"])
        # The surviving worker stopped its run (the stop key) and is back in the fleet, idle.
        deadline = time.monotonic() + 10
        while idle_fleet_workers(client) != ["a0"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert idle_fleet_workers(client) == ["a0"]
        client.close()


def test_a_worker_whose_coordinator_is_gone_stops_by_itself(http_server, fleet_factory) -> None:
    with RedisServer() as server:
        client = server.client()
        fleet = fleet_factory(server.url)
        fleet.start("orphan")
        fleet.wait_registered(client, ["orphan"])
        keys = wire.RunKeys("orphaned-run")
        client.set(keys.coordinator, b"1", px=1500)  # a coordinator that dies right after assigning
        plan = open_plan(http_server.url, rate=50, duration_s=60.0)
        assignment = wire.Assignment(run_id=keys.run_id, plan_json=plan.model_dump_json(), index=0, count=1)
        start = wire.Start(run_id=keys.run_id, start_redis_us=wire.redis_time_us(client) + 200_000)
        client.rpush(wire.assignment_key("orphan"), wire.encode(assignment), wire.encode(start))
        started = time.monotonic()
        final = None
        last = "0-0"
        while final is None and time.monotonic() - started < 20:
            reply = client.xread({keys.records: last}, block=200)
            for _key, entries in cast(list[Any], reply or []):
                for entry_id, fields in entries:
                    last = entry_id
                    record = decode_record(fields[wire.RECORD_FIELD])
                    final = record if record.final else final
        assert final is not None, "the orphaned worker never stopped"
        assert time.monotonic() - started < 10  # far short of the planned 60 s
        assert final.offset_s + final.duration_s < 10
        client.close()


def test_unknown_placement_and_missing_fleet_are_clear_errors(http_server) -> None:
    with RedisServer() as server:
        plan = open_plan(http_server.url, rate=10, duration_s=1.0)
        with pytest.raises(RunError, match="0 idle worker"):
            execute_run(plan, RunOptions(workers=2, redis_url=server.url, placement="fleet", live=False))
    assert Path(".").exists()
