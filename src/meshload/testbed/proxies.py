"""The HAProxy processes: one generation per function or topology, taking over seamlessly from the
previous one.

A new generation's proxy starts with `-sf <old pid>` when it replaces a proxy of the same name: it
binds the same ports (SO_REUSEPORT), then tells the old process to stop listening and finish what it
is serving. A topology switch changes the set of proxies (a node proxy takes over the inbound ports of
several sidecars): once the new generation is ready, every old proxy nobody replaced by name gets the
same soft-stop signal (SIGUSR1). Each generation has its own stats socket, an abstract AF_UNIX socket
(no file to clean up, no limit from the state folder's path length); a new process is ready when that
socket answers.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time

import psutil

from . import processes
from .errors import TestbedFailure
from .haproxy_config import MeshSetting, proxy_config
from .processes import ProcessRecord
from .state import StateFolder, log_tail
from .topology import proxy_places

PROXY_KINDS = ("sidecar", "node-proxy", "ingress")
READY_TIMEOUT_S = 10.0
OLD_PROXY_EXIT_S = 3.0  # how long a switch waits for replaced proxies to finish their requests
_SUN_PATH_BYTES = 108


def _stats_name(state: dict, proxy: str, generation: int) -> str:
    return f"meshload-{state['mark'][:16]}-{proxy}.{generation}"


def _abstract_address(name: str) -> str:
    # HAProxy pads abstract socket names with NULs to the full sun_path size.
    return ("\0" + name).ljust(_SUN_PATH_BYTES, "\0")


def stats_address(state: dict, proxy: str) -> str:
    """The current stats socket of `proxy` ("reviews-v2-sidecar", "node-a-proxy", "ingress-gateway")
    for `connect`."""
    return _abstract_address(_stats_name(state, proxy, int(state["generation"])))


def _records(state: dict) -> list[ProcessRecord]:
    return [ProcessRecord.from_json(record) for record in state.get("processes", [])]


def start_generation(
    folder: StateFolder, state: dict, setting: MeshSetting
) -> tuple[list[subprocess.Popen], list[ProcessRecord]]:
    """Start every proxy of `setting.topology` with `setting`, replacing the running ones of the same
    name; updates and saves `state`.

    Returns the started processes (for the caller to reap) and the old proxies no new one replaced
    (another topology's): they still serve until the caller has repointed the applications and calls
    `retire`. Old and new are both recorded until the new ones are ready, so `down` finds either
    whatever happens in between."""
    generation = int(state["generation"]) + 1
    old = {r.name: r for r in _records(state) if r.kind in PROXY_KINDS and processes.is_alive(r)}
    started: list[tuple[ProcessRecord, subprocess.Popen, str]] = []
    for place in proxy_places(setting.topology):
        sock = _stats_name(state, place.name, generation)
        config = folder.config_dir / f"{place.name}.cfg"
        config.write_text(proxy_config(place, setting, f"abns@{sock}"))
        argv = ["haproxy", "-db", "-f", str(config)]
        if place.name in old:
            argv += ["-sf", str(old[place.name].pid)]
        record, child = processes.spawn(
            argv, name=place.name, kind=place.kind, mark=state["mark"], log_path=folder.log(place.name)
        )
        started.append((record, child, sock))
    kept = [r for r in _records(state) if r.kind not in PROXY_KINDS]
    new = [record for record, _, _ in started]
    state["processes"] = [r.to_json() for r in [*kept, *old.values(), *new]]
    state["generation"] = generation
    folder.save(state)
    deadline = time.monotonic() + READY_TIMEOUT_S
    try:
        for record, child, sock in started:
            _wait_ready(folder, record, child, sock, deadline)
    except TestbedFailure as exc:
        state["processes"] = [r.to_json() for r in [*kept, *old.values(), *new] if processes.is_alive(r)]
        folder.save(state)
        raise TestbedFailure(
            f"{exc}; the proxies may be half switched: run `meshload testbed down`, then `up`"
        ) from exc
    replaced = [record for name, record in old.items() if name in {r.name for r in new}]
    orphans = [record for record in old.values() if record not in replaced]
    state["processes"] = [r.to_json() for r in [*kept, *orphans, *new]]
    folder.save(state)
    processes.wait_gone(replaced, OLD_PROXY_EXIT_S)
    return [child for _, child, _ in started], orphans


def retire(folder: StateFolder, state: dict, orphans: list[ProcessRecord]) -> None:
    """Stop proxies no new generation replaced, as `-sf` stops a replaced one: stop listening,
    finish the connections being served (within `hard-stop-after`), exit. Updates and saves `state`."""
    for record in orphans:
        if processes.is_alive(record):
            with contextlib.suppress(psutil.Error):  # gone meanwhile
                psutil.Process(record.pid).send_signal(signal.SIGUSR1)
    processes.wait_gone(orphans, OLD_PROXY_EXIT_S)
    names = {(record.name, record.pid) for record in orphans}
    state["processes"] = [r.to_json() for r in _records(state) if (r.name, r.pid) not in names]
    folder.save(state)


def _wait_ready(
    folder: StateFolder, record: ProcessRecord, child: subprocess.Popen, sock_name: str, deadline: float
) -> None:
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise TestbedFailure(
                f"{record.name} (haproxy) exited with code {child.returncode}: {log_tail(folder.log(record.name))}"
            )
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stats:
                stats.settimeout(1.0)
                stats.connect(_abstract_address(sock_name))
                stats.sendall(b"show info\n")
                if stats.recv(64):
                    return
        except OSError:
            pass  # not listening yet
        time.sleep(0.01)
    raise TestbedFailure(f"{record.name} (haproxy) did not get ready in time: {log_tail(folder.log(record.name))}")


def stop_proxies(folder: StateFolder, state: dict) -> None:
    """Stop every proxy (the `none` profile); updates and saves `state`."""
    processes.stop_records([r for r in _records(state) if r.kind in PROXY_KINDS])
    state["processes"] = [r.to_json() for r in _records(state) if r.kind not in PROXY_KINDS]
    folder.save(state)


def haproxy_version() -> str:
    """`HAProxy version 2.6.12-1+deb12u4 2026/10/17`, or "" when haproxy cannot be run."""
    try:
        first = subprocess.run(
            ["haproxy", "-v"], capture_output=True, text=True, timeout=5, check=False
        ).stdout.splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return ""
    return first.split(" - ")[0].strip()
