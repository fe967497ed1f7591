"""What the reports say about where a run happened: the coordinator's machine, its load, the software
versions, the Redis server and the workers' hosts (and Kubernetes nodes)."""

from __future__ import annotations

import os
import platform
import socket
from collections.abc import Container
from importlib.metadata import PackageNotFoundError, version

import redis

from ..pipeline import wire


def _version_of(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return ""


def describe_environment(
    client: redis.Redis | None = None,
    worker_hosts: dict[str, str] | None = None,
    worker_nodes: dict[str, str] | None = None,
) -> dict[str, object]:
    """A JSON-ready description of the run's environment (goes to `RunResult.environment`);
    `worker_hosts` and `worker_nodes` ({worker id: host or Kubernetes node}) say where each worker ran."""
    load_1m, load_5m, load_15m = os.getloadavg()
    environment: dict[str, object] = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "kernel": platform.release(),
        "cpu_cores": os.cpu_count() or 1,
        "load_average": [round(load_1m, 2), round(load_5m, 2), round(load_15m, 2)],
        "python": platform.python_version(),
        "versions": {
            name: _version_of(name) for name in ("meshload", "uvloop", "httptools", "hdrhistogram", "numpy", "redis")
        },
    }
    try:
        import psutil

        environment["memory_mb"] = round(psutil.virtual_memory().total / 1_048_576)
    except ImportError:  # psutil is a dependency; an environment without it still gets a report
        pass
    if client is not None:
        try:
            info = client.info("server")
            environment["redis_version"] = str(info.get("redis_version", ""))
        except redis.exceptions.RedisError:
            environment["redis_version"] = ""
    if worker_hosts:
        environment["worker_hosts"] = dict(sorted(worker_hosts.items()))
    if worker_nodes:
        environment["worker_nodes"] = dict(sorted(worker_nodes.items()))
    return environment


def worker_places(client: redis.Redis, worker_ids: Container[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Each of the run's workers' host, and its Kubernetes node where it has one (read from the fleet's
    registry, while every worker is registered)."""
    hosts: dict[str, str] = {}
    nodes: dict[str, str] = {}
    for raw_id, raw_info in client.hgetall(wire.fleet_key()).items():
        worker_id = wire.reply_text(raw_id)
        if worker_id in worker_ids:
            info = wire.decode_worker_info(raw_info)
            hosts[worker_id] = info.host
            if info.node:
                nodes[worker_id] = info.node
    return hosts, nodes
