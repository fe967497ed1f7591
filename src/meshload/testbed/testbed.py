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

import logging
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from .. import __version__
from . import app_admin, inspection, processes, proxies
from .certs import ensure_identities
from .errors import TestbedFailure
from .exporter import EXPORTER_KIND
from .haproxy_config import LUA_DELAY, Identity, MeshSetting
from .inspection import healthy, records, topology_of
from .processes import ProcessRecord
from .profiles import profile_named
from .startup import READY_TIMEOUT_S, app_argv, free_ports, listening_socket, wait_ready
from .state import StateFolder, default_state_dir
from .topology import (
    ALL_INSTANCES,
    DEFAULT_TOPOLOGY,
    GRPC_SERVICE,
    INGRESS_NAME,
    NODES,
    SERVICES,
    InstancePorts,
    Ports,
    check_topology,
    instances_of,
    modes_of,
    proxy_of,
)

log = logging.getLogger(__name__)


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


class Testbed:
    """BookInfo behind HAProxy sidecars on 127.0.0.1; state kept in `state_dir`."""

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, state_dir: Path | None = None) -> None:
        self.folder = StateFolder(Path(state_dir) if state_dir is not None else default_state_dir())
        self._children: list[subprocess.Popen] = []  # processes this object started, to reap

    # queries ----------------------------------------------------------------------------------

    def is_running(self) -> bool:
        state = self.folder.load()
        return state is not None and healthy(state)

    def _running_state(self) -> dict:
        state = self.folder.load()
        if state is None or not healthy(state):
            raise TestbedFailure(
                f"the testbed in {self.folder.root} is not running; start it with `meshload testbed up`"
            )
        return state

    @property
    def ingress_url(self) -> str:
        """BookInfo's entry: the ingress gateway, or productpage itself under `none`."""
        return inspection.ingress_url(self._running_state())

    def current_function(self) -> str:
        return self._running_state()["function"]

    def current_params(self) -> dict[str, str]:
        return dict(self._running_state()["params"])

    def current_topology(self) -> str:
        return topology_of(self._running_state())

    @property
    def grpc_address(self) -> str:
        """`host:port` of the gRPC ratings service (ratings.v1.Ratings): the ingress's gRPC port, or
        under `none` the first replica itself (no proxy, so no balancing)."""
        return inspection.grpc_address(self._running_state())

    def grpc_calls(self) -> dict[str, dict[str, int]]:
        """Calls each gRPC ratings replica has received since it started, by method:
        {"ratings-grpc-1": {"GetRatings": 120, "StreamRatings": 0}, ...}. A run's share per replica
        is the difference of two readings."""
        return inspection.grpc_calls(self._running_state())

    def served_by_replica(self) -> dict[str, dict[str, int]]:
        """Requests each instance of a service with several instances has answered since it started,
        by service: {"reviews": {"reviews-v1": 40, ...}, "ratings-grpc": {"ratings-grpc-1": 120, ...}}
        (gRPC replicas: their calls, every method; HTTP instances: requests but health checks). From
        the instances themselves, read directly; a window's share is the difference of two readings."""
        return inspection.served_by_replica(self._running_state())

    def proxy_of(self, instance: str) -> str | None:
        """The proxy in front of an instance, which also carries its calls, in the topology in force
        ("reviews-v2-sidecar", "node-b-proxy"); None when it has none (ingress-only, `none`)."""
        state = self._running_state()
        if not profile_named(state["function"]).proxies:
            return None
        return proxy_of(topology_of(state), instance)

    def pids_by_kind(self) -> dict[str, list[int]]:
        """Recorded pids by role, for resource sampling: "app", "sidecar" (the data-plane proxies beside
        the applications: sidecars, or the node proxies in per-node) and "ingress"."""
        return inspection.pids_by_kind(self.folder.load())

    def stats_socket(self, proxy: str) -> str:
        """The HAProxy stats socket of a running proxy ("productpage-v1-sidecar", "node-a-proxy",
        "ingress-gateway"), as an AF_UNIX address for `socket.connect`."""
        return proxies.stats_address(self._running_state(), proxy)

    def status(self) -> dict:
        """Whether it runs, the ingress URL, the function and topology in force, the gRPC service with
        each replica's calls, every process with its ports."""
        return inspection.status_of(self.folder.root, self.folder.load())

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
            reusable = state is not None and healthy(state)
            if state is not None and reusable and state.get("meshload_version") != __version__:
                # Started by another meshload: its processes speak that version's admin protocol.
                started_by = state.get("meshload_version", "an earlier release")
                log.warning("the running testbed was started by meshload %s; restarting it", started_by)
                reusable = False
            if state is not None and reusable:
                chosen = topology or topology_of(state)
                self._apply_locked(state, function, _resolve(function, params, chosen), chosen)
                for service, mode in (app_modes or {}).items():
                    self._set_mode_locked(state, service, mode, fault_scale)
                return
            chosen = topology or DEFAULT_TOPOLOGY
            values = _resolve(function, params, chosen)
            if state is not None:
                self._stop_locked(state)  # a half-dead testbed, or another release's: clear it out first
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
        listeners = {instance.name: listening_socket() for instance in ALL_INSTANCES}
        grpc_instances = instances_of(GRPC_SERVICE)
        free = iter(free_ports(2 * len(ALL_INSTANCES) + len(grpc_instances) + 3 + len(NODES)))
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
            "meshload_version": __version__,
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
                argv = app_argv(instance, sock, ports.instances[instance.name], options)
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
            wait_ready(self.folder, state, deadline)
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

    # apply ------------------------------------------------------------------------------------

    def apply(self, function: str, params: dict[str, str] | None = None) -> None:
        """Put `function` in force alone (parameters override its defaults) in the topology in force,
        without restarting apps. A function that does not apply in the topology is refused."""
        profile_named(function).resolve(params)
        with self.folder.locked():
            state = self._running_state()
            topology = topology_of(state)
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
        left = processes.stop_records(records(state))
        # anything started but not recorded (a controller killed mid-start) still carries the mark
        left += processes.stop_all(processes.marked_processes(state["mark"]))
        self._reap()
        if not left:
            self.folder.clear()
        return left
