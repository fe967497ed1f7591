"""The local testbed: BookInfo's processes, their HAProxy proxies and the ingress, one function and
one topology at a time.

`Testbed(state_dir)` is all a caller needs: `up`, `apply`, `set_topology`, `down`, `status`,
`set_app_mode`, `grpc_calls`. Several processes may drive one testbed (the CLI, a coordinator):
everything they share is in the state folder, and every change holds its lock. Applications never
restart when the function or the topology changes; HAProxy reloads seamlessly (see `proxies.py`),
and the applications are repointed at their new proxy (or, under `none` and in ingress-only,
straight at each other) while the old proxies finish what they serve.
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
from .certs import ensure_identities
from .errors import TestbedFailure
from .exporter import EXPORTER_KIND
from .haproxy_config import LUA_DELAY, Identity, MeshSetting
from .processes import ProcessRecord
from .profiles import profile_named
from .ratings_proto import RATINGS_PROTO, RATINGS_SERVICE
from .state import StateFolder, default_state_dir, log_tail
from .topology import (
    ALL_INSTANCES,
    DEFAULT_TOPOLOGY,
    GRPC_SERVICE,
    INGRESS_NAME,
    NODES,
    REPLICATED_SERVICES,
    SERVICES,
    Instance,
    InstancePorts,
    Ports,
    check_topology,
    instances_of,
    modes_of,
    proxy_of,
    proxy_places,
)

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


def _grpc_address(state: dict) -> str:
    ports = Ports.from_json(state["ports"])
    if state["function"] == "none":  # no balancer at all: a client reaches one replica
        return f"127.0.0.1:{ports.instances[instances_of(GRPC_SERVICE)[0].name].grpc}"
    return f"127.0.0.1:{ports.ingress_grpc}"


def _metrics_url(state: dict) -> str:
    """The exporter's endpoint (cAdvisor-named CPU and memory of every process); "" for a testbed
    started before it had one."""
    port = Ports.from_json(state["ports"]).exporter
    return f"http://127.0.0.1:{port}/metrics" if port else ""


def _topology(state: dict) -> str:
    return state.get("topology", DEFAULT_TOPOLOGY)


def _resolve(function: str, params: dict[str, str] | None, topology: str) -> dict[str, str]:
    """The function's values with `params`, checked, and checked to apply in `topology`."""
    try:
        check_topology(topology)
    except ValueError as exc:
        raise TestbedFailure(str(exc)) from None
    profile = profile_named(function)
    values = profile.resolve(params)
    refusal = profile.refusal(topology, values)
    if refusal:
        raise TestbedFailure(refusal)
    return values


def _app_argv(instance: Instance, sock: socket.socket, ports: InstancePorts, options: list[str]) -> list[str]:
    argv = [sys.executable, "-m", "meshload.testbed.apps", instance.service, instance.version]
    argv += ["--fd", str(sock.fileno()), *options]
    if instance.grpc:
        argv += ["--grpc-port", str(ports.grpc), "--replica", instance.name]
    return argv


def _process_ports(record: ProcessRecord, ports: Ports, topology: str) -> dict[str, int]:
    """The ports a process listens on, for `status`."""
    if record.kind == "app":
        own = ports.instances[record.name]
        return {"http": own.app, **({"grpc": own.grpc} if own.grpc else {})}
    if record.kind == "ingress":
        return {"http": ports.ingress, "grpc": ports.ingress_grpc}
    if record.kind == EXPORTER_KIND:
        return {"metrics": ports.exporter}
    place = next((p for p in proxy_places(topology) if p.name == record.name), None)
    if place is None:  # a proxy of the topology before, finishing what it serves
        return {}
    if record.kind == "sidecar":
        own = ports.instances[place.instances[0].name]
        return {"inbound": own.inbound, **({"outbound": own.outbound} if place.calls else {})}
    listening = {f"inbound-{i.name}": ports.instances[i.name].inbound for i in place.instances}
    return {**listening, "outbound": ports.nodes[place.node]}


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

    def current_topology(self) -> str:
        return _topology(self._running_state())

    @property
    def grpc_address(self) -> str:
        """`host:port` of the gRPC ratings service (ratings.v1.Ratings): the ingress's gRPC port, or
        under `none` the first replica itself (no proxy, so no balancing)."""
        return _grpc_address(self._running_state())

    def grpc_calls(self) -> dict[str, dict[str, int]]:
        """Calls each gRPC ratings replica has received since it started, by method:
        {"ratings-grpc-1": {"GetRatings": 120, "StreamRatings": 0}, ...}. A run's share per replica
        is the difference of two readings."""
        ports = Ports.from_json(self._running_state()["ports"])
        counts = {}
        for instance in instances_of(GRPC_SERVICE):
            try:
                info = app_admin.app_info(ports.instances[instance.name].app)
            except (OSError, ValueError) as exc:
                raise TestbedFailure(f"{instance.name} does not report its calls ({exc})") from exc
            counts[instance.name] = {method: int(n) for method, n in info.get("calls", {}).items()}
        return counts

    def served_by_replica(self) -> dict[str, dict[str, int]]:
        """Requests each instance of a service with several instances has answered since it started,
        by service: {"reviews": {"reviews-v1": 40, ...}, "ratings-grpc": {"ratings-grpc-1": 120, ...}}
        (gRPC replicas: their calls, every method; HTTP instances: requests but health checks). From
        the instances themselves, read directly; a window's share is the difference of two readings."""
        ports = Ports.from_json(self._running_state()["ports"])
        counts: dict[str, dict[str, int]] = {}
        for service in REPLICATED_SERVICES:
            for instance in instances_of(service):
                try:
                    info = app_admin.app_info(ports.instances[instance.name].app)
                except (OSError, ValueError) as exc:
                    raise TestbedFailure(f"{instance.name} does not report what it served ({exc})") from exc
                served = sum(int(n) for n in info.get("calls", {}).values()) if instance.grpc else info["served"]
                counts.setdefault(service, {})[instance.name] = int(served)
        return counts

    def proxy_of(self, instance: str) -> str | None:
        """The proxy in front of an instance, which also carries its calls, in the topology in force
        ("reviews-v2-sidecar", "node-b-proxy"); None when it has none (ingress-only, `none`)."""
        state = self._running_state()
        if not profile_named(state["function"]).proxies:
            return None
        return proxy_of(_topology(state), instance)

    def pids_by_kind(self) -> dict[str, list[int]]:
        """Recorded pids by role, for resource sampling: "app", "sidecar" (the data-plane proxies beside
        the applications: sidecars, or the node proxies in per-node) and "ingress"."""
        state = self.folder.load()
        found: dict[str, list[int]] = {"app": [], "sidecar": [], "ingress": []}
        for record in _records(state) if state else []:
            if record.kind == EXPORTER_KIND:
                continue  # meshload's own observer, not part of the mesh
            role = "sidecar" if record.kind == "node-proxy" else record.kind
            found.setdefault(role, []).append(record.pid)
        return found

    def stats_socket(self, proxy: str) -> str:
        """The HAProxy stats socket of a running proxy ("productpage-v1-sidecar", "node-a-proxy",
        "ingress-gateway"), as an AF_UNIX address for `socket.connect`."""
        return proxies.stats_address(self._running_state(), proxy)

    def status(self) -> dict:
        """Whether it runs, the ingress URL, the function and topology in force, the gRPC service with
        each replica's calls, every process with its ports."""
        state = self.folder.load()
        if state is None:
            return {"state_dir": str(self.folder.root), "running": False, "processes": []}
        ports = Ports.from_json(state["ports"])
        topology = _topology(state)
        listing = [
            {
                "name": record.name,
                "kind": record.kind,
                "pid": record.pid,
                "alive": processes.is_alive(record),
                "ports": _process_ports(record, ports, topology),
            }
            for record in _records(state)
        ]
        replicas: dict[str, dict | None] = {}
        for instance in instances_of(GRPC_SERVICE):
            try:
                replicas[instance.name] = app_admin.app_info(ports.instances[instance.name].app).get("calls")
            except (OSError, ValueError):
                replicas[instance.name] = None  # not answering: its process shows as dead above
        return {
            "state_dir": str(self.folder.root),
            "running": _healthy(state),
            "function": state["function"],
            "params": state["params"],
            "topology": topology,
            "ingress_url": _ingress_url(state),
            "metrics_url": _metrics_url(state),
            "grpc": {
                "address": _grpc_address(state),
                "service": RATINGS_SERVICE,
                "proto": str(RATINGS_PROTO),
                "calls": replicas,
            },
            "app_modes": state.get("app_modes", {}),
            "processes": listing,
        }

    # up ---------------------------------------------------------------------------------------

    def up(
        self,
        function: str = "sidecar",
        params: dict[str, str] | None = None,
        *,
        topology: str | None = None,
        app_modes: dict[str, str] | None = None,
        fault_scale: float = 1.0,
        ready_timeout_s: float = READY_TIMEOUT_S,
    ) -> None:
        """Start everything with `function` in force in `topology` (default sidecar); a running
        testbed just switches function (and topology, when given).

        `app_modes` sets services' own behaviour (e.g. {"ratings": "faulty"}); `fault_scale`
        multiplies ratings' 7 s / 60 s / 15 min fault constants."""
        profile_named(function).resolve(params)  # a bad function or parameter fails first
        known = (*SERVICES, GRPC_SERVICE)
        for service, mode in (app_modes or {}).items():
            if service not in known or mode not in modes_of(service):
                raise TestbedFailure(
                    f"{service} cannot be {mode!r}: modes are {', '.join(modes_of(service))}"
                    if service in known
                    else f"no BookInfo service {service!r}; services: {', '.join(known)}"
                )
        if shutil.which("haproxy") is None:
            raise TestbedFailure(
                "haproxy is not installed; install HAProxy 2.6 or newer (e.g. apt-get install haproxy)"
            )
        with self.folder.locked():
            state = self.folder.load()
            if state is not None and _healthy(state):
                chosen = topology or _topology(state)
                self._apply_locked(state, function, _resolve(function, params, chosen), chosen)
                for service, mode in (app_modes or {}).items():
                    self._set_mode_locked(state, service, mode, fault_scale)
                return
            chosen = topology or DEFAULT_TOPOLOGY
            values = _resolve(function, params, chosen)
            if state is not None:
                self._stop_locked(state)  # a half-dead testbed: clear it out first
            self._up_locked(function, values, chosen, app_modes or {}, fault_scale, ready_timeout_s)

    def _up_locked(
        self,
        function: str,
        values: dict[str, str],
        topology: str,
        app_modes: dict[str, str],
        fault_scale: float,
        ready_timeout_s: float,
    ) -> None:
        deadline = time.monotonic() + ready_timeout_s
        self.folder.make()
        mark = uuid.uuid4().hex
        listeners = {instance.name: _listening_socket() for instance in ALL_INSTANCES}
        grpc_instances = instances_of(GRPC_SERVICE)
        free = iter(_free_ports(2 * len(ALL_INSTANCES) + len(grpc_instances) + 3 + len(NODES)))
        ports = Ports(
            instances={
                instance.name: InstancePorts(
                    app=listeners[instance.name].getsockname()[1],
                    inbound=next(free),
                    outbound=next(free),
                    grpc=next(free) if instance.grpc else 0,
                )
                for instance in ALL_INSTANCES
            },
            ingress=next(free),
            ingress_grpc=next(free),
            nodes={node: next(free) for node in NODES},
            exporter=next(free),
        )
        state: dict[str, Any] = {
            "mark": mark,
            "function": function,
            "params": values,
            "topology": topology,
            "ports": ports.to_json(),
            "processes": [],
            "generation": 0,
            "app_modes": dict(app_modes),
            "fault_scale": fault_scale,
        }
        self.folder.save(state)
        proxied = profile_named(function).proxies
        try:
            for instance in ALL_INSTANCES:
                sock = listeners[instance.name]
                upstreams = app_admin.upstreams_for(instance.name, ports, topology=topology if proxied else None)
                options = [
                    "--fault-scale",
                    str(fault_scale),
                    "--mode",
                    app_modes.get(instance.service, "normal"),
                    "--upstreams",
                    app_admin.encode_upstreams(upstreams),
                ]
                argv = _app_argv(instance, sock, ports.instances[instance.name], options)
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
            self._start_exporter(state, ports.exporter)
            # certificates are made while the applications import their modules
            self._identities()
            (self.folder.config_dir / "faults.lua").write_text(LUA_DELAY)
            if proxied:
                self._start_proxies(state, function, values, topology)
            self._wait_ready(state, deadline)
        except BaseException:
            self._stop_locked(state)
            raise
        finally:
            for sock in listeners.values():
                sock.close()

    def _start_exporter(self, state: dict, port: int) -> None:
        argv = [sys.executable, "-m", "meshload.testbed.exporter", "--state-dir", str(self.folder.root)]
        record, child = processes.spawn(
            [*argv, "--port", str(port)],
            name="metrics-exporter",
            kind=EXPORTER_KIND,
            mark=state["mark"],
            log_path=self.folder.log("metrics-exporter"),
        )
        self._children.append(child)
        state["processes"].append(record.to_json())
        self.folder.save(state)

    def _identities(self) -> dict[str, Identity]:
        return ensure_identities(self.folder.certs_dir, [*SERVICES, GRPC_SERVICE, *NODES, INGRESS_NAME])

    def _start_proxies(self, state: dict, function: str, values: dict[str, str], topology: str) -> list[ProcessRecord]:
        """The topology's proxies with `function` in force; the old proxies no new one replaced."""
        setting = MeshSetting(
            ports=Ports.from_json(state["ports"]),
            function=function,
            params=values,
            lua_path=self.folder.config_dir / "faults.lua",
            identities=self._identities(),
            topology=topology,
        )
        children, orphans = proxies.start_generation(self.folder, state, setting)
        self._children += children
        self._reap()
        return orphans

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
        """Put `function` in force alone (parameters override its defaults) in the topology in force,
        without restarting apps. A function that does not apply in the topology is refused."""
        profile_named(function).resolve(params)
        with self.folder.locked():
            state = self._running_state()
            topology = _topology(state)
            self._apply_locked(state, function, _resolve(function, params, topology), topology)

    def set_topology(self, topology: str, function: str | None = None, params: dict[str, str] | None = None) -> None:
        """Move the proxies to `topology` ("sidecar", "per-node", "ingress-only") without restarting
        apps; with `function`, put that function in force at the same time, else the one in force
        stays (with its parameters). Refused, before anything changes, when the function does not
        apply in `topology`."""
        with self.folder.locked():
            state = self._running_state()
            if function is None:
                function, params = state["function"], {**state["params"], **(params or {})}
            self._apply_locked(state, function, _resolve(function, params, topology), topology)

    def _apply_locked(self, state: dict, function: str, values: dict[str, str], topology: str) -> None:
        proxied = profile_named(function).proxies
        orphans = []
        if proxied:  # the new proxies first, so the apps can be pointed at them
            orphans = self._start_proxies(state, function, values, topology)
        app_admin.point_apps(Ports.from_json(state["ports"]), topology=topology if proxied else None)
        if proxied:
            proxies.retire(self.folder, state, orphans)  # another topology's proxies, no longer called
        else:
            proxies.stop_proxies(self.folder, state)
        self._reap()
        state["function"] = function
        state["params"] = values
        state["topology"] = topology
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
