"""The local testbed as a mesh the coordinator can drive: `LocalTestbedMesh` over `meshload.testbed`.

It adds to the testbed what the coordinator needs (the MeshAdapter protocol, MeshUsage sampling) and
turns the testbed's failures into `TestbedError`, the one-line user errors.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from ...errors import TestbedError
from ...testbed import PROFILES, Testbed, TestbedFailure, haproxy_version
from .base import MeshBaseline, Support, SupportLevel

if TYPE_CHECKING:  # the results model (and numpy) load only when sampling: `meshload testbed` stays quick
    from ...results.run_result import MeshUsage

P = ParamSpec("P")
R = TypeVar("R")

MESH_NAME = "testbed-haproxy"
MESH_VERSION = "meshload-testbed 1"
BASELINE = MeshBaseline(
    mesh=MESH_NAME,
    mtls_encrypted=False,
    contains={
        "mtls": "none: sidecars talk plaintext",
        "load-balancing": "round robin",
        "retries": "none",
        "timeout": "none (5 min server timeout)",
    },
)


def _as_user_error(method: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(method)
    def translated(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except TestbedFailure as exc:
            raise TestbedError(str(exc)) from exc

    return translated


class TestbedSampling:
    """Resource use of the testbed's proxies and applications while a run is measured."""

    __test__ = False

    def __init__(self, testbed: Testbed, function: str, params: dict[str, str], interval_s: float) -> None:
        from .resources import ProcessSampler

        self._testbed = testbed
        self._function = function
        self._params = params
        self._topology = testbed.current_topology()
        self._served_before = _served(testbed)
        self._sampler = ProcessSampler(testbed.pids_by_kind, interval_s).start()

    def stop(self) -> MeshUsage:
        from ...results.run_result import ComponentUsage, MeshUsage

        usage = self._sampler.stop()
        served_after = _served(self._testbed)
        return MeshUsage(
            mesh=MESH_NAME,
            function=self._function,
            profile=dict(self._params),
            mtls_enabled=self._function == "mtls",
            sidecar=usage.get("sidecar", ComponentUsage()),
            ingress_gateway=usage.get("ingress", ComponentUsage()),
            control_plane=ComponentUsage(),  # the testbed has none: HAProxy is configured by files
            applications=usage.get("app", ComponentUsage()),
            proxy_version=_haproxy_version(),
            mesh_version=MESH_VERSION,
            topology=self._topology,
            replicas=served_in_window(self._served_before, served_after),
        )


def _served(testbed: Testbed) -> dict[str, dict[str, int]] | None:
    """The replicas' own counts now; None when one does not answer (the window then has none)."""
    try:
        return testbed.served_by_replica()
    except TestbedFailure:
        return None


def served_in_window(
    before: dict[str, dict[str, int]] | None, after: dict[str, dict[str, int]] | None
) -> dict[str, dict[str, int]]:
    """What each replica answered between two readings, for the services that answered anything.
    A replica whose count went down was restarted in between: nothing is claimed for its service."""
    if before is None or after is None:
        return {}
    window: dict[str, dict[str, int]] = {}
    for service, counts in after.items():
        served = {name: count - before.get(service, {}).get(name, 0) for name, count in counts.items()}
        if sum(served.values()) > 0 and min(served.values()) >= 0:
            window[service] = served
    return window


@functools.cache
def _haproxy_version() -> str:
    return haproxy_version()


class LocalTestbedMesh:
    """BookInfo behind HAProxy sidecars on this machine (see `meshload.testbed`)."""

    __test__ = False
    name = MESH_NAME

    def __init__(self, state_dir: Path | None = None) -> None:
        self.testbed = Testbed(state_dir)

    @property
    @_as_user_error
    def ingress_url(self) -> str:
        return self.testbed.ingress_url

    @property
    @_as_user_error
    def grpc_url(self) -> str:
        """The gRPC ingress as a base URL (grpc://127.0.0.1:PORT): ratings.v1.Ratings, three replicas."""
        return f"grpc://{self.testbed.grpc_address}"

    @property
    def baseline(self) -> MeshBaseline:
        return BASELINE

    def functions(self) -> list[str]:
        return list(PROFILES)

    def support(self, function: str, params: dict[str, str] | None = None, topology: str | None = None) -> Support:
        """Whether the testbed can put `function` in force (in `topology`, when given)."""
        profile = PROFILES.get(function)
        if profile is None:
            return Support(MESH_NAME, function, SupportLevel.NOT_SUPPORTED, "no such testbed profile")
        try:
            values = profile.resolve(params)
        except TestbedFailure as exc:
            return Support(MESH_NAME, function, SupportLevel.NOT_SUPPORTED, str(exc))
        refusal = profile.refusal(topology, values) if topology is not None else None
        if refusal:
            return Support(MESH_NAME, function, SupportLevel.NOT_SUPPORTED, refusal)
        return Support(MESH_NAME, function, SupportLevel.SUPPORTED)

    @_as_user_error
    def apply(self, function: str, params: dict[str, str] | None = None, topology: str | None = None) -> None:
        """Put `function` in force (with the proxies moved to `topology`, when given); starts the
        testbed first when it is not running."""
        if topology is not None or not self.testbed.is_running():
            self.testbed.up(function, params, topology=topology)
        else:
            self.testbed.apply(function, params)

    @_as_user_error
    def current_topology(self) -> str:
        return self.testbed.current_topology()

    @_as_user_error
    def remove(self) -> None:
        """Back to the plain `sidecar` baseline (a testbed that is not running has nothing to remove)."""
        if self.testbed.is_running():
            self.testbed.apply("sidecar", None)

    @_as_user_error
    def current_function(self) -> str:
        return self.testbed.current_function()

    @_as_user_error
    def start_sampling(self, interval_s: float = 1.0) -> TestbedSampling:
        return TestbedSampling(self.testbed, self.testbed.current_function(), self.testbed.current_params(), interval_s)

    @_as_user_error
    def up(self, function: str = "sidecar", params: dict | None = None, **options: Any) -> None:
        self.testbed.up(function, params, **options)

    @_as_user_error
    def down(self) -> None:
        left = self.testbed.down()
        if left:
            raise TestbedError(f"processes {', '.join(map(str, left))} would not stop; kill them by pid")

    def status(self) -> dict:
        return self.testbed.status()

    @_as_user_error
    def set_app_mode(self, service: str, mode: str, *, fault_scale: float | None = None) -> None:
        self.testbed.set_app_mode(service, mode, fault_scale=fault_scale)
