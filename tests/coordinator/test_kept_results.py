"""A run's files kept in the Redis it reported to, and `meshload results list/get` fetching them from
another process, with a real redis-server and real workers: kept for the TTL asked, not kept with 0,
left out when too large, and a Redis that will not take them costs the run nothing but a warning."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.support.http_servers import ServerHandle
from tests.support.redis_server import RedisServer

from meshload.coordinator.kept_results import KEEP_OTHER_FILES_UP_TO_BYTES, keep_run_results
from meshload.coordinator.run import RunOptions, execute_run
from meshload.pipeline import wire
from meshload.results.outputs import load_run_result
from meshload.scenarios.plan import Plan

pytestmark = pytest.mark.timeout(120)


def _meshload(*args: str, redis_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHLOAD_")} | {wire.REDIS_URL_ENV: redis_url}
    return subprocess.run(
        [sys.executable, "-m", "meshload", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_a_runs_files_are_fetched_back_from_redis_and_expire(
    http_server: ServerHandle, redis_server: RedisServer, tmp_path: Path
) -> None:
    plan = Plan(
        targets=[{"url": http_server.url}], load={"kind": "open", "rate": 40.0}, duration_s=1.0, labels={"team": "perf"}
    )
    out = tmp_path / "run"
    result = execute_run(
        plan, RunOptions(workers=1, redis_url=redis_server.url, out_dir=out, live=False, results_ttl_s=3600)
    )
    unkept = execute_run(plan, RunOptions(workers=1, redis_url=redis_server.url, live=False, results_ttl_s=0))

    listed = _meshload("results", "list", "--json", redis_url=redis_server.url)
    assert listed.returncode == 0, listed.stderr
    [entry] = json.loads(listed.stdout)  # the run with --results-ttl 0 is not there
    assert entry["run_id"] == result.run_id != unkept.run_id
    assert entry["labels"] == {"team": "perf"} and entry["valid"] is result.valid
    assert set(entry["files"]) == {"smp.json", "report.html", "fortio.json", "histograms.hlog"}
    assert entry["files"]["smp.json"] == (out / "smp.json").stat().st_size
    assert 3_590_000 < entry["expires_unix_ms"] - time.time() * 1000 <= 3_600_000
    with redis_server.client() as client:
        assert 3_590_000 < client.pttl(wire.results_key(result.run_id)) <= 3_600_000  # Redis drops it then

    fetched = tmp_path / "fetched"
    got = _meshload("results", "get", result.run_id, "--out", str(fetched), redis_url=redis_server.url)
    assert got.returncode == 0, got.stderr
    assert got.stdout == f"{fetched}\n"
    for name in entry["files"]:
        assert (fetched / name).read_bytes() == (out / name).read_bytes(), name
    assert load_run_result(fetched).completed == result.completed  # a folder `meshload report` reads

    missing = _meshload("results", "get", unkept.run_id, redis_url=redis_server.url)
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.splitlines() == [
        f"error: no results of run {unkept.run_id!r} in Redis at {redis_server.url} (never kept, or past their "
        "TTL); `meshload results list` shows the kept ones"
    ]


def test_large_files_are_left_out_and_a_full_redis_costs_only_a_warning(
    http_server: ServerHandle, redis_server: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    plan = Plan(targets=[{"url": http_server.url}], load={"kind": "open", "rate": 20.0}, duration_s=1.0)
    out = tmp_path / "run"
    result = execute_run(plan, RunOptions(workers=1, redis_url=redis_server.url, out_dir=out, live=False))
    (out / "histograms.hlog").write_bytes(os.urandom(KEEP_OTHER_FILES_UP_TO_BYTES + 1))  # does not compress
    with redis_server.client() as client:
        assert keep_run_results(client, result, out, ttl_s=60)
        got = _meshload("results", "get", result.run_id, "--out", str(tmp_path / "got"), redis_url=redis_server.url)
        assert got.returncode == 0, got.stderr
        assert sorted(path.name for path in (tmp_path / "got").iterdir()) == ["fortio.json", "report.html", "smp.json"]
        assert f"warning: histograms.hlog ({KEEP_OTHER_FILES_UP_TO_BYTES + 1:,} bytes) was too large" in got.stderr

        client.config_set("maxmemory", "1")  # full: every write refused (noeviction)
        client.config_set("maxmemory-policy", "noeviction")
        with caplog.at_level(logging.WARNING):
            assert not keep_run_results(client, result, out, ttl_s=60)
        client.config_set("maxmemory", "0")
    [warning] = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert warning.startswith(f"run {result.run_id}: its results could not be kept in Redis")
    assert "(command not allowed when used memory > 'maxmemory'.)" in warning
    assert warning.endswith(f"its files are in {out}")
