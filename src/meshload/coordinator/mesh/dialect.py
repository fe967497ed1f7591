"""What each mesh module (`istio`, `linkerd`, `consul`) provides to `KubernetesMesh`: its resources for
each function, its baseline, and what it can read about itself from the cluster.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import catalogue
from .base import MeshBaseline, Support, SupportLevel, Unsupported
from .catalogue import NAMESPACE, RENDERED, FunctionCall, resolve
from .manifests import Manifest, Object, Patch, Rendering

NONE_REASON = (
    "BookInfo without sidecars is a deployment, not a mesh resource: deploy k8s/bookinfo into a namespace "
    "without the mesh's injection switch"
)


class ClusterReader(Protocol):
    """The reads a mesh module needs (`cluster.Cluster` provides them)."""

    def list(self, api_version: str, kind: str, namespace: str | None) -> list[Object]: ...

    def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> Object | None: ...


@dataclass(frozen=True)
class MeshFacts:
    """What the adapter found in the cluster: SMP `mesh_config`'s mesh_build, proxy_build, mtls_enabled."""

    mesh: str
    mesh_build: str
    proxy_build: str
    mtls_enabled: bool
    sources: dict[str, str] = field(default_factory=dict)  # where each fact came from, for the report


class Dialect:
    """A mesh's own resources for every function of the catalogue."""

    name: str = ""
    control_plane_namespace: str = ""
    baseline: MeshBaseline
    owned_kinds: tuple[tuple[str, str], ...] = ()  # (apiVersion, kind) of every Manifest it renders

    def render(
        self, function: str, params: dict[str, str] | None = None, namespace: str = NAMESPACE
    ) -> Rendering | Unsupported:
        """The function's resources (baseline included), or the typed answer that the mesh cannot."""
        call = resolve(function, params)
        if call.name == "none":
            return self.unsupported(call, NONE_REASON)
        if call.name not in RENDERED:
            description = catalogue.MESH_PROFILES[call.name].description
            return self.unsupported(call, f"a testbed function with no counterpart in k8s/bookinfo ({description})")
        return self._render(call, namespace)

    def support(self, function: str, params: dict[str, str] | None = None) -> Support:
        rendering = self.render(function, params)
        if isinstance(rendering, Unsupported):
            return rendering
        if rendering.ignored:
            reason = f"not applied: {', '.join(rendering.ignored)}"
            return Support(self.name, function, SupportLevel.PARTIAL, reason)
        return Support(self.name, function, SupportLevel.SUPPORTED)

    def _render(self, call: FunctionCall, namespace: str) -> Rendering | Unsupported:
        raise NotImplementedError

    def facts(self, cluster: ClusterReader, namespace: str, control_plane_namespace: str) -> MeshFacts:
        raise NotImplementedError

    # -- helpers for the mesh modules ------------------------------------------------------------

    def unsupported(self, call: FunctionCall, reason: str, *, in_baseline: bool = False) -> Unsupported:
        level = SupportLevel.IN_BASELINE if in_baseline else SupportLevel.NOT_SUPPORTED
        return Unsupported(self.name, call.name, level, reason)

    def rendering(
        self,
        call: FunctionCall,
        namespace: str,
        manifests: Iterable[Manifest] = (),
        patches: Iterable[Patch] = (),
        notes: Iterable[str] = (),
        ignored: Iterable[str] = (),
    ) -> Rendering:
        return Rendering(
            mesh=self.name,
            function=call.name,
            params=dict(call.params),
            namespace=namespace,
            manifests=tuple(manifests),
            patches=tuple(patches),
            notes=tuple(notes),
            ignored=tuple(ignored),
        )


def image_tag(image: str) -> str:
    """The version part of a container image reference: the tag, else the digest, else `latest`.

    `docker.io/istio/pilot:1.24.2` -> `1.24.2`; `localhost:5000/proxy@sha256:ab..` -> `sha256:ab..`.
    """
    if "@" in image:
        return image.split("@", 1)[1]
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else "latest"


def container_images(pod_spec: dict[str, Any], name: str) -> list[str]:
    """Images of the containers (or init containers: native sidecars) called `name`, or starting with
    `name-` (Consul names a multi-port sidecar `consul-dataplane-<service>`)."""
    images = []
    for container in [*pod_spec.get("containers", []), *pod_spec.get("initContainers", [])]:
        container_name = str(container.get("name", ""))
        if container_name == name or container_name.startswith(f"{name}-"):
            images.append(str(container.get("image", "")))
    return images


def proxy_build(cluster: ClusterReader, namespace: str, container: str) -> tuple[str, str]:
    """The sidecar's image version across the namespace's pods, and where it was seen.

    Several versions (a rollout in progress, or a partly upgraded mesh) are listed, comma-separated.
    """
    tags: dict[str, str] = {}
    for pod in cluster.list("v1", "Pod", namespace):
        for image in container_images(pod.get("spec", {}), container):
            tags.setdefault(image_tag(image), f"pod {namespace}/{pod['metadata']['name']} container {container}")
    if not tags:
        return "", f"no pod in namespace {namespace} has a {container} container"
    return ", ".join(sorted(tags)), next(iter(tags.values()))


def control_plane_build(
    cluster: ClusterReader, namespace: str, kinds: tuple[str, ...], container: str
) -> tuple[str, str]:
    """The control plane's version: the image tag of the first workload in `namespace` (of `kinds`,
    e.g. Deployment, StatefulSet) with a container called `container`."""
    for kind in kinds:
        for workload in cluster.list("apps/v1", kind, namespace):
            template = workload.get("spec", {}).get("template", {}).get("spec", {})
            for candidate in template.get("containers", []):
                if candidate.get("name") == container:
                    where = f"{kind} {namespace}/{workload['metadata']['name']} container {container}"
                    return image_tag(str(candidate.get("image", ""))), where
    return "", f"no {'/'.join(kinds)} in namespace {namespace} has a {container} container"
