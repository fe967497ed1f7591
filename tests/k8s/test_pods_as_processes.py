"""The chart's containers run as local processes, the closest stand-in for a cluster here: Redis from the
rendered config and start script (its readiness probe included), a worker from its rendered arguments
and environment, and the `helm test` pod's script, which coordinates a tiny run through that worker
against a local HTTP server. Kubernetes' part is played by the test: Secret and downward-API values go
into the environment, `$(VAR)` references are expanded as the kubelet does, cluster names map to
loopback addresses and container paths to temporary folders."""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from tests.support.http_servers import ServerHandle, start_server
from tests.support.redis_server import free_port

from meshload.pipeline import wire

from .chart_objects import ChartObjects
from .conftest import cli_options

REDIS_HOST = "perf-meshload-redis.perf.svc"
ECHO_HOST = "perf-meshload-test-echo"
START_TIMEOUT_S = 30.0
_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def container_env(container: dict[str, Any], secrets: dict[str, dict[str, str]]) -> dict[str, str]:
    """The environment the kubelet gives `container`: Secret keys and downward-API fields resolved, and
    `$(VAR)` expanded from the variables defined before it (`$$` is a literal `$`)."""
    env: dict[str, str] = {}
    fields = {"spec.nodeName": "node-a", "metadata.name": "pod-0", "metadata.namespace": "perf"}
    for entry in container.get("env", []):
        if "value" in entry:

            def expand(match: re.Match[str]) -> str:
                name = match.group(1)
                if name is None:
                    return "$"
                return env.get(name, match.group(0))

            env[entry["name"]] = _REFERENCE.sub(expand, entry["value"])
        elif "secretKeyRef" in entry["valueFrom"]:
            ref = entry["valueFrom"]["secretKeyRef"]
            env[entry["name"]] = secrets[ref["name"]][ref["key"]]
        else:
            env[entry["name"]] = fields[entry["valueFrom"]["fieldRef"]["fieldPath"]]
    return env


def _secrets(chart: ChartObjects) -> dict[str, dict[str, str]]:
    return {
        secret["metadata"]["name"]: {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
        for secret in chart.of_kind("Secret")
    }


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def _wait(condition: Any, what: str, timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout_s:g}s")
        time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class ChartRedis:
    """The rendered Redis container as a process: its ConfigMap's redis.conf, its start script."""

    def __init__(self, chart: ChartObjects, folder: Path) -> None:
        template = chart.pod_template("StatefulSet/perf-meshload-redis")
        self.container = template.spec["containers"][0]
        self.env = container_env(self.container, _secrets(chart))
        self.password = self.env["REDISCLI_AUTH"]
        self.port = free_port()
        self.paths = {"/etc/redis": folder / "etc", "/run/redis": folder / "run", "/data": folder / "data"}
        for path in self.paths.values():
            path.mkdir(parents=True)
        config = chart.get("ConfigMap", "perf-meshload-redis")["data"]["redis.conf"]
        # A pod has its own network: here, listen on loopback only, on a free port.
        config = self.localize(config).replace("port 6379", f"port {self.port}") + "bind 127.0.0.1\n"
        (self.paths["/etc/redis"] / "redis.conf").write_text(config)
        self.process: subprocess.Popen[bytes] | None = None

    def localize(self, text: str) -> str:
        for container_path, local in self.paths.items():
            text = text.replace(container_path, str(local))
        return text

    def start(self) -> None:
        script = self.localize(self.container["command"][-1])
        self.process = subprocess.Popen(
            [*self.container["command"][:-1], script],
            env={"PATH": os.environ["PATH"], **self.env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def probe(self, password: str) -> bool:
        """The rendered readiness probe, run with REDISCLI_AUTH as the container has it."""
        command = [part.replace("6379", str(self.port)) for part in self.container["readinessProbe"]["exec"]["command"]]
        env = {"PATH": os.environ["PATH"], "REDISCLI_AUTH": password}
        return subprocess.run(command, env=env, capture_output=True, timeout=10, check=False).returncode == 0

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)


@pytest.fixture
def chart_redis(default_chart: ChartObjects, tmp_path: Path) -> Iterator[ChartRedis]:
    server = ChartRedis(default_chart, tmp_path / "redis")
    server.start()
    try:
        _wait(lambda: server.probe(server.password), "the readiness probe passes")
        yield server
    finally:
        server.stop()


def test_redis_starts_from_the_rendered_config_with_the_password_from_its_secret_only(
    chart_redis: ChartRedis,
) -> None:
    assert not chart_redis.probe("not-the-password")
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(port=chart_redis.port).ping()
    client = redis.Redis(port=chart_redis.port, password=chart_redis.password)
    try:
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("maxmemory") == {"maxmemory": str(400 * 1024 * 1024)}
        pid = int(client.info("server")["process_id"])
    finally:
        client.close()
    assert chart_redis.password not in _cmdline(pid)
    auth_file = chart_redis.paths["/run/redis"] / "auth.conf"
    assert auth_file.stat().st_mode & 0o077 == 0  # written under umask 077


@pytest.mark.slow
@pytest.mark.skipif(
    "--allow-target" not in cli_options("worker"),
    reason="meshload worker has no --allow-target/--max-* options yet (issue 8): the chart's worker args would fail",
)
def test_the_helm_test_script_runs_a_tiny_run_through_a_rendered_worker(
    default_chart: ChartObjects, chart_redis: ChartRedis, tmp_path: Path
) -> None:
    echo: ServerHandle = start_server("ok")
    worker: subprocess.Popen[bytes] | None = None
    names = {f"{REDIS_HOST}:6379": f"127.0.0.1:{chart_redis.port}", f"{ECHO_HOST}:8080": f"127.0.0.1:{echo.port}"}
    names[ECHO_HOST] = "127.0.0.1"  # the allowlist entry: what the Service name resolves to

    def localize(text: str) -> str:
        for name, local in names.items():
            text = text.replace(name, local)
        return text.replace("/tmp/run", str(tmp_path / "run"))

    # `meshload` and `python` as the image has them on its PATH.
    shims = tmp_path / "bin"
    shims.mkdir()
    (shims / "python").symlink_to(sys.executable)
    (shims / "meshload").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m meshload "$@"\n')
    (shims / "meshload").chmod(0o755)
    base_env = {
        "PATH": f"{shims}:{os.environ['PATH']}",
        **({"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}),
    }
    try:
        worker_container = default_chart.pod_template("Deployment/perf-meshload-worker").spec["containers"][0]
        worker_env = {
            key: localize(value) for key, value in container_env(worker_container, _secrets(default_chart)).items()
        }
        worker_env["HOME"] = str(tmp_path)
        worker = subprocess.Popen(
            [sys.executable, "-m", "meshload", *(localize(arg) for arg in worker_container["args"])],
            env={**base_env, **worker_env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(worker_env["MESHLOAD_REDIS"])
        try:
            _wait(lambda: client.hlen(wire.fleet_key()) == 1, "the worker registers in the fleet")
        finally:
            client.close()
        assert chart_redis.password not in _cmdline(worker.pid)

        test_pod = next(obj for obj in default_chart.rendered.hooks() if obj["kind"] == "Pod")
        container = test_pod["spec"]["containers"][0]
        env = {key: localize(value) for key, value in container_env(container, _secrets(default_chart)).items()}
        env["HOME"] = str(tmp_path)
        done = subprocess.run(
            [*container["command"], localize(container["args"][0])],
            env={**base_env, **env},
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        found = re.search(r"helm test: (\d+) responses 200 from the echo target", done.stdout)
        assert found, done.stdout
        assert int(found.group(1)) >= 40  # 20 req/s for 3 s, planned 60
        assert echo.counters()["requests"] >= int(found.group(1)) + 1  # + the readiness wait's request
    finally:
        if worker is not None:
            _stop(worker)
        echo.stop()
