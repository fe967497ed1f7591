"""The local testbed: BookInfo's processes, their HAProxy sidecars and the ingress, one function at a time.

`Testbed(state_dir)` is all a caller needs: `up`, `apply`, `down`, `status`, `set_app_mode`. Several
processes may drive one testbed (the CLI, a coordinator): everything they share is in the state folder,
and every change holds its lock. Applications never restart when the function changes; HAProxy
reloads seamlessly (see `proxies.py`), and `none` repoints the applications straight at each other.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from . import app_admin, processes, proxies
from .certs import Identity, ensure_identities
from .errors import TestbedFailure
from .haproxy_config import LUA_DELAY, MeshSetting
from .processes import ProcessRecord
from .profiles import profile_named
from .state import StateFolder, default_state_dir, log_tail
from .topology import INGRESS_NAME, INSTANCES, SERVICES, InstancePorts, Ports, modes_of

READY_TIMEOUT_S = 10.0
# paths that prove BookInfo answers end to end: productpage -> details, productpage -> reviews -> ratings
READY_PATHS = ("/api/v1/products/0", "/api/v1/products/0/reviews")


def _free_ports(count: int) -> list[int]:
    # Bound all at once so they are distinct, then released for HAProxy to bind.
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _listening_socket() -> socket.socket:
    # Applications get their socket already listening: the port is known and held before they start.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock


def _records(state: dict) -> list[ProcessRecord]:
    return [ProcessRecord.from_json(record) for record in state.get("processes", [])]


def _healthy(state: dict) -> bool:
    records = _records(state)
    return bool(records) and all(processes.is_alive(record) for record in records)


def _ingress_url(state: dict) -> str:
    ports = Ports.from_json(state["ports"])
    if state["function"] == "none":
        return f"http://127.0.0.1:{ports.instances['productpage-v1'].app}"
    return f"http://127.0.0.1:{ports.ingress}"


class Testbed:
    """BookInfo behind HAProxy sidecars on 127.0.0.1; state kept in `state_dir`."""

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, state_dir: Path | None = None) -> None:
        self.folder = StateFolder(Path(state_dir) if state_dir is not None else default_state_dir())
        self._children: list[subprocess.Popen] = []  # processes this object started, to reap

    # queries ----------------------------------------------------------------------------------

    def is_running(self) -> bool:
        state = self.folder.load()
        return state is not None and _healthy(state)

    def _running_state(self) -> dict:
        state = self.folder.load()
        if state is None or not _healthy(state):
            raise TestbedFailure(
                f"the testbed in {self.folder.root} is not running; start it with `meshload testbed up`"
            )
        return state

    @property
    def ingress_url(self) -> str:
        """BookInfo's entry: the ingress gateway, or productpage itself under `none`."""
        return _ingress_url(self._running_state())

    def current_function(self) -> str:
        return self._running_state()["function"]

    def current_params(self) -> dict[str, str]:
        return dict(self._running_state()["params"])

    def pids_by_kind(self) -> dict[str, list[int]]:
        """Recorded pids by kind ("app", "sidecar", "ingress"), for resource sampling."""
        state = self.folder.load()
        found: dict[str, list[int]] = {"app": [], "sidecar": [], "ingress": []}
        for record in _records(state) if state else []:
            found.setdefault(record.kind, []).append(record.pid)
        return found

    def stats_socket(self, proxy: str) -> str:
        """The HAProxy stats socket of a running proxy ("productpage-v1-sidecar", "ingress-gateway"),
        as an AF_UNIX address for `socket.connect`."""
        return proxies.stats_address(self._running_state(), proxy)

    def status(self) -> dict:
        """Whether it runs, the ingress URL, the function in force, every process with its ports."""
        state = self.folder.load()
        if state is None:
            return {"state_dir": str(self.folder.root), "running": False, "processes": []}
        ports = Ports.from_json(state["ports"])
        listing = []
        for record in _records(state):
            if record.kind == "app":
                record_ports = {"http": ports.instances[record.name].app}
            elif record.kind == "sidecar":
                own = ports.instances[record.name.removesuffix("-sidecar")]
                record_ports = {"inbound": own.inbound, "outbound": own.outbound}
            else:
                record_ports = {"http": ports.ingress}
            listing.append(
                {
                    "name": record.name,
                    "kind": record.kind,
                    "pid": record.pid,
                    "alive": processes.is_alive(record),
                    "ports": record_ports,
                }
            )
        return {
            "state_dir": str(self.folder.root),
            "running": _healthy(state),
            "function": state["function"],
            "params": state["params"],
            "ingress_url": _ingress_url(state),
            "app_modes": state.get("app_modes", {}),
            "processes": listing,
        }

    # up ---------------------------------------------------------------------------------------

    def up(
        self,
        function: str = "sidecar",
        params: dict[str, str] | None = None,
        *,
        app_modes: dict[str, str] | None = None,
        fault_scale: float = 1.0,
        ready_timeout_s: float = READY_TIMEOUT_S,
    ) -> None:
        """Start everything with `function` in force; a running testbed just switches function.

        `app_modes` sets services' own behaviour (e.g. {"ratings": "faulty"}); `fault_scale`
        multiplies ratings' 7 s / 60 s / 15 min fault constants."""
        values = profile_named(function).resolve(params)
        for service, mode in (app_modes or {}).items():
            if service not in SERVICES or mode not in modes_of(service):
                raise TestbedFailure(
                    f"{service} cannot be {mode!r}: modes are {', '.join(modes_of(service))}"
                    if service in SERVICES
                    else f"no BookInfo service {service!r}; services: {', '.join(SERVICES)}"
                )
        if shutil.which("haproxy") is None:
            raise TestbedFailure(
                "haproxy is not installed; install HAProxy 2.6 or newer (e.g. apt-get install haproxy)"
            )
        with self.folder.locked():
            state = self.folder.load()
            if state is not None and _healthy(state):
                self._apply_locked(state, function, values)
                for service, mode in (app_modes or {}).items():
                    self._set_mode_locked(state, service, mode, fault_scale)
                return
            if state is not None:
                self._stop_locked(state)  # a half-dead testbed: clear it out first
            self._up_locked(function, values, app_modes or {}, fault_scale, ready_timeout_s)

    def _up_locked(
        self,
        function: str,
        values: dict[str, str],
        app_modes: dict[str, str],
        fault_scale: float,
        ready_timeout_s: float,
    ) -> None:
        deadline = time.monotonic() + ready_timeout_s
        self.folder.make()
        mark = uuid.uuid4().hex
        listeners = {instance.name: _listening_socket() for instance in INSTANCES}
        free = iter(_free_ports(2 * len(INSTANCES) + 1))
        ports = Ports(
            instances={
                name: InstancePorts(app=sock.getsockname()[1], inbound=next(free), outbound=next(free))
                for name, sock in listeners.items()
            },
            ingress=next(free),
        )
        state: dict[str, Any] = {
            "mark": mark,
            "function": function,
            "params": values,
            "ports": ports.to_json(),
            "processes": [],
            "generation": 0,
            "app_modes": dict(app_modes),
            "fault_scale": fault_scale,
        }
        self.folder.save(state)
        mesh = profile_named(function).proxies
        try:
            for instance in INSTANCES:
                sock = listeners[instance.name]
                argv = [
                    sys.executable,
                    "-m",
                    "meshload.testbed.apps",
                    instance.service,
                    instance.version,
                    "--fd",
                    str(sock.fileno()),
                    "--fault-scale",
                    str(fault_scale),
                    "--mode",
                    app_modes.get(instance.service, "normal"),
                    "--upstreams",
                    app_admin.encode_upstreams(app_admin.upstreams_for(instance.name, ports, mesh=mesh)),
                ]
                # a pod-like name, which reviews reports as `podname` (Kubernetes sets HOSTNAME)
                env = {**os.environ, "HOSTNAME": f"{instance.name}-{mark[:10]}"}
                record, child = processes.spawn(
                    argv,
                    name=instance.name,
                    kind="app",
                    mark=mark,
                    log_path=self.folder.log(instance.name),
                    pass_fds=(sock.fileno(),),
                    env=env,
                )
                self._children.append(child)
                state["processes"].append(record.to_json())
                self.folder.save(state)
                sock.close()
            # certificates are made while the applications import their modules
            self._identities()
            (self.folder.config_dir / "faults.lua").write_text(LUA_DELAY)
            if mesh:
                self._start_proxies(state, function, values)
            self._wait_ready(state, deadline)
        except BaseException:
            self._stop_locked(state)
            raise
        finally:
            for sock in listeners.values():
                sock.close()

    def _identities(self) -> dict[str, Identity]:
        return ensure_identities(self.folder.certs_dir, [*SERVICES, INGRESS_NAME])

    def _start_proxies(self, state: dict, function: str, values: dict[str, str]) -> None:
        setting = MeshSetting(
            ports=Ports.from_json(state["ports"]),
            function=function,
            params=values,
            lua_path=self.folder.config_dir / "faults.lua",
            identities=self._identities(),
        )
        self._children += proxies.start_generation(self.folder, state, setting)
        self._reap()

    def _reap(self) -> None:
        self._children = [child for child in self._children if child.poll() is None]

    def _wait_ready(self, state: dict, deadline: float) -> None:
        ports = Ports.from_json(state["ports"])
        pending = {name: p.app for name, p in ports.instances.items()}
        while pending:
            for name, port in list(pending.items()):
                try:
                    app_admin.http_call("GET", port, "/health", timeout_s=1.0)
                    del pending[name]
                except OSError:
                    pass
            if not pending:
                break
            for record in _records(state):
                if not processes.is_alive(record):
                    raise TestbedFailure(f"{record.name} exited during start: {log_tail(self.folder.log(record.name))}")
            if time.monotonic() > deadline:
                raise TestbedFailure(
                    f"BookInfo did not start in time ({', '.join(sorted(pending))}); see {self.folder.logs_dir}"
                )
            time.sleep(0.02)
        port = int(_ingress_url(state).rsplit(":", 1)[1])
        for path in READY_PATHS:
            last = "no answer"
            while True:
                try:
                    status, _ = app_admin.http_call("GET", port, path, timeout_s=5.0)
                    if status == 200:
                        break
                    last = f"status {status}"
                except OSError as exc:
                    last = str(exc)
                if time.monotonic() > deadline:
                    raise TestbedFailure(
                        f"BookInfo is not answering {path} through the ingress ({last}); see {self.folder.logs_dir}"
                    )
                time.sleep(0.05)

    # apply ------------------------------------------------------------------------------------

    def apply(self, function: str, params: dict[str, str] | None = None) -> None:
        """Put `function` in force alone (parameters override its defaults) without restarting apps."""
        values = profile_named(function).resolve(params)
        with self.folder.locked():
            self._apply_locked(self._running_state(), function, values)

    def _apply_locked(self, state: dict, function: str, values: dict[str, str]) -> None:
        mesh = profile_named(function).proxies
        if mesh:
            self._start_proxies(state, function, values)  # before the apps point at the sidecars again
        app_admin.point_apps(Ports.from_json(state["ports"]), mesh=mesh)
        if not mesh:
            proxies.stop_proxies(self.folder, state)
            self._reap()
        state["function"] = function
        state["params"] = values
        self.folder.save(state)

    def set_app_mode(self, service: str, mode: str, *, fault_scale: float | None = None) -> None:
        """Set how a service (or one instance, e.g. "reviews-v3") behaves: see apps/base.py."""
        with self.folder.locked():
            self._set_mode_locked(self._running_state(), service, mode, fault_scale)

    def _set_mode_locked(self, state: dict, service: str, mode: str, fault_scale: float | None) -> None:
        app_admin.set_mode(Ports.from_json(state["ports"]), service, mode, fault_scale)
        state.setdefault("app_modes", {})[service] = mode
        self.folder.save(state)

    # down -------------------------------------------------------------------------------------

    def down(self) -> list[int]:
        """Stop every process of the testbed; the pids that would not die (none, normally)."""
        with self.folder.locked():
            state = self.folder.load()
            if state is None:
                return []
            return self._stop_locked(state)

    def _stop_locked(self, state: dict) -> list[int]:
        left = processes.stop_records(_records(state))
        # anything started but not recorded (a controller killed mid-start) still carries the mark
        left += processes.stop_all(processes.marked_processes(state["mark"]))
        self._reap()
        if not left:
            self.folder.clear()
        return left
