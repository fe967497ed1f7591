"""What the coordinator needs from a mesh: put one traffic-control function in force, measure what the
mesh's components cost while a run is in progress, and take the function away again.

A run drives any mesh the same way::

    in_force = mesh.apply(function, params)     # returns once the function is in force
    sampling = mesh.start_sampling()            # the measured window
    usage = sampling.stop()
    mesh.remove()

Implementations: `local.LocalTestbedMesh` (BookInfo behind HAProxy sidecars on this machine) and
`kubernetes_mesh.KubernetesMesh` (Istio, Linkerd or Consul in a cluster). A mesh that cannot express a
function says so with an `Unsupported` (one line, with the reason) instead of failing, so a study can
mark that cell "not supported"; `MeshBaseline` states what a mesh's plain sidecar baseline already
contains (Linkerd and Consul encrypt between meshed pods without being asked), so "mtls vs sidecar" is
not read as the same comparison on every mesh.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

from ...results.run_result import MeshUsage


class SupportLevel(StrEnum):
    SUPPORTED = "supported"
    PARTIAL = "partial"  # applied, but some parameters have no equivalent in the mesh
    NOT_SUPPORTED = "not supported"  # the mesh cannot express the function (or these parameters)
    IN_BASELINE = "in baseline"  # the mesh's baseline already does it; nothing to switch on


@dataclass(frozen=True)
class Support:
    """Whether a mesh can put a function in force, and if not fully, why (one line)."""

    mesh: str
    function: str
    level: SupportLevel
    reason: str = ""

    @property
    def applicable(self) -> bool:
        return self.level in (SupportLevel.SUPPORTED, SupportLevel.PARTIAL)

    def __str__(self) -> str:
        if self.level is SupportLevel.SUPPORTED:
            return f"{self.mesh} supports {self.function}"
        return f"{self.mesh} {self.function}: {self.level} ({self.reason})"


@dataclass(frozen=True)
class Unsupported(Support):
    """The typed "cannot" answer: `level` is NOT_SUPPORTED or IN_BASELINE, `reason` says why."""


@dataclass(frozen=True)
class MeshBaseline:
    """What the mesh's plain sidecar baseline already contains, by function, in words a report can show.

    `mtls_encrypted` is whether traffic between meshed pods is encrypted with no function applied.
    """

    mesh: str
    mtls_encrypted: bool
    contains: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        return "; ".join(f"{name}: {text}" for name, text in self.contains.items())


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

    @property
    def baseline(self) -> MeshBaseline:
        """What the mesh's `sidecar` baseline already contains."""
        ...

    def functions(self) -> list[str]:
        """Names of the traffic-control functions this mesh knows (see `support` for each one)."""
        ...

    def support(self, function: str, params: dict[str, str] | None = None) -> Support:
        """Whether `function` with these parameters can be put in force here, and if not, why."""
        ...

    def apply(self, function: str, params: dict[str, str] | None = None) -> object:
        """Put `function` (with parameters overriding its defaults) in force, alone; returns once it
        is in force (an adapter may return a report of how that was confirmed)."""
        ...

    def remove(self) -> None:
        """Take away everything `apply` put in place (the testbed returns to its `sidecar` baseline)."""
        ...

    def current_function(self) -> str: ...

    def start_sampling(self, interval_s: float = 1.0) -> ResourceSampling:
        """Begin sampling CPU and memory of every mesh component."""
        ...
