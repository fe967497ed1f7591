"""What the coordinator needs from a mesh: apply one traffic-control function, and measure what the
mesh's components cost while a run is in progress.

Implementations: `local.LocalTestbedMesh` (BookInfo behind HAProxy sidecars on this machine). A
Kubernetes adapter (Istio, Linkerd, Consul) implements the same protocol.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ...results.run_result import MeshUsage


@runtime_checkable
class ResourceSampling(Protocol):
    """A sampler started just before the measured window and stopped just after it."""

    def stop(self) -> MeshUsage:
        """Stop sampling; the mesh's resource use averaged over the window."""
        ...


@runtime_checkable
class MeshAdapter(Protocol):
    name: str  # "testbed-haproxy", "istio", ...

    @property
    def ingress_url(self) -> str:
        """Base URL of the mesh's ingress, e.g. http://127.0.0.1:18080"""
        ...

    def functions(self) -> list[str]:
        """Names of the traffic-control functions this mesh can apply."""
        ...

    def apply(self, function: str, params: dict[str, str] | None = None) -> None:
        """Put `function` (with parameters overriding its defaults) in force, alone."""
        ...

    def current_function(self) -> str: ...

    def start_sampling(self, interval_s: float = 1.0) -> ResourceSampling:
        """Begin sampling CPU and memory of every mesh component."""
        ...
