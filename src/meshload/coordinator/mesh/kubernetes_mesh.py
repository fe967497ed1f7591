"""A real mesh in a Kubernetes cluster as a `MeshAdapter`: `KubernetesMesh("istio" | "linkerd" | "consul")`.

    mesh = KubernetesMesh("istio", namespace="bookinfo", ingress_url="http://gateway.example")
    in_force = mesh.apply("retries", {"attempts": "2"})   # created/patched, then waited for
    sampling = mesh.start_sampling(); usage = sampling.stop()
    mesh.remove()                                          # deleted/reverted

Applying a function first takes away what the previous one left that the new one does not re-apply
(also after a crash: owned objects carry `app.kubernetes.io/managed-by: meshload`, patched ones the
`meshload/revert` annotation with the values the patch replaced), then creates or replaces the owned
objects, merge-patches the others, and waits until the mesh reports them in force (or the probe shows
the behaviour).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ...errors import FunctionNotSupported, MeshError, UsageError
from ...results.run_result import MeshUsage
from .base import MeshBaseline, Support, Unsupported
from .catalogue import FUNCTIONS, NAMESPACE
from .cluster import Cluster
from .consul import ConsulDialect
from .dialect import Dialect, MeshFacts
from .in_force import DEFAULT_POLL_S, DEFAULT_TIMEOUT_S, InForce, ObjectState, Probe, Readiness, object_state
from .in_force import wait_until_in_force as _wait
from .istio import IstioDialect
from .linkerd import LinkerdDialect
from .manifests import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    Object,
    Patch,
    Rendering,
    combine_patches,
    merge,
    owned,
    revert_patch,
)

REVERT_ANNOTATION = "meshload/revert"

DIALECTS: dict[str, type[Dialect]] = {"istio": IstioDialect, "linkerd": LinkerdDialect, "consul": ConsulDialect}
MESHES: tuple[str, ...] = tuple(DIALECTS)

# Kinds a mesh module may patch (found again by their revert annotation).
_PATCHED_KINDS: dict[str, tuple[tuple[str, str], ...]] = {
    "istio": (("networking.istio.io/v1", "VirtualService"),),
    "linkerd": (("v1", "Service"), ("apps/v1", "Deployment")),
    "consul": (("consul.hashicorp.com/v1alpha1", "ProxyDefaults"),),
}


def dialect_named(mesh: str) -> Dialect:
    dialect = DIALECTS.get(mesh)
    if dialect is None:
        raise UsageError(f"unknown mesh {mesh!r}; choose one of {', '.join(MESHES)}")
    return dialect()


class KubernetesMesh:
    """Istio, Linkerd or Consul with BookInfo in one namespace of a cluster."""

    def __init__(
        self,
        mesh: str,
        *,
        namespace: str = NAMESPACE,
        cluster: Cluster | None = None,
        kubeconfig: str | Path | None = None,
        context: str | None = None,
        ingress_url: str | None = None,
        control_plane_namespace: str | None = None,
        probe: Probe | None = None,
        in_force_timeout_s: float = DEFAULT_TIMEOUT_S,
        poll_s: float = DEFAULT_POLL_S,
    ) -> None:
        self.dialect = dialect_named(mesh)
        self.name = self.dialect.name
        self.namespace = namespace
        self.control_plane_namespace = control_plane_namespace or self.dialect.control_plane_namespace
        self.probe = probe
        self.in_force_timeout_s = in_force_timeout_s
        self.poll_s = poll_s
        self._cluster = cluster
        self._kubeconfig = kubeconfig
        self._context = context
        self._ingress_url = ingress_url
        self._current: Rendering | None = None
        # The status objects had when this process last changed them (see `_status_predates_change`).
        self._status_before_change: dict[tuple[str, str, str, str], Object] = {}

    @property
    def cluster(self) -> Cluster:
        if self._cluster is None:
            self._cluster = Cluster.connect(kubeconfig=self._kubeconfig, context=self._context)
        return self._cluster

    @property
    def ingress_url(self) -> str:
        if not self._ingress_url:
            raise UsageError(f"no ingress URL for {self.name}: give the mesh ingress's URL (e.g. --ingress URL)")
        return self._ingress_url.rstrip("/")

    @property
    def baseline(self) -> MeshBaseline:
        return self.dialect.baseline

    def functions(self) -> list[str]:
        return list(FUNCTIONS)

    def support(self, function: str, params: dict[str, str] | None = None) -> Support:
        return self.dialect.support(function, params)

    def render(self, function: str, params: dict[str, str] | None = None) -> Rendering:
        """The function's resources; FunctionNotSupported (with the typed answer) where the mesh cannot."""
        rendering = self.dialect.render(function, params, self.namespace)
        if isinstance(rendering, Unsupported):
            raise FunctionNotSupported(rendering)
        return rendering

    def current_function(self) -> str:
        return self._current.function if self._current is not None else ""

    # -- apply and remove ------------------------------------------------------------------------

    def apply(self, function: str, params: dict[str, str] | None = None, *, probe: Probe | None = None) -> InForce:
        """Put `function` in force alone and wait for it (the mesh's status, else `probe`)."""
        rendering = self.render(function, params)
        existing = self._clear(keep=rendering)
        self._status_before_change = {}
        for manifest in rendering.manifests:
            current = existing.get(manifest.key)
            written = self.cluster.apply(manifest.body, current)
            if current is not None and written is not current and current.get("status"):
                self._status_before_change[manifest.key] = current["status"]
        for patch in rendering.patches:
            self._apply_patch(patch, rendering.function)
        self._current = rendering
        return _wait(
            f"{self.name} {function}",
            lambda: self._states(rendering),
            probe=probe or self.probe,
            timeout_s=self.in_force_timeout_s,
            poll_s=self.poll_s,
        )

    def remove(self) -> None:
        """Delete every object meshload owns in the namespace and revert every patch it made."""
        self._clear(keep=None)
        self._current = None

    def _clear(self, keep: Rendering | None) -> dict[tuple[str, str, str, str], Object | None]:
        """Take away what is not part of `keep`: owned objects it does not render, and patches it does
        not make identically (a patch from an unknown earlier process is always reverted). Returns the
        owned objects that stay, as read."""
        keep_keys: set[tuple[str, str, str, str]] = set()
        unchanged_patches: set[tuple[str, str, str, str]] = set()
        staying: dict[tuple[str, str, str, str], Object | None] = {}
        if keep is not None:
            keep_keys = {m.key for m in keep.manifests} | {p.key for p in keep.patches}
            if self._current is not None:
                unchanged_patches = {p.key for p in keep.patches if p in self._current.patches}
        for api_version, kind in self._kinds():
            for obj in self.cluster.list(api_version, kind, self.namespace):
                metadata = obj.get("metadata", {})
                key = (api_version, kind, self.namespace, metadata.get("name", ""))
                if metadata.get("labels", {}).get(MANAGED_BY_LABEL) == MANAGED_BY:
                    if key in keep_keys:
                        staying[key] = obj
                    else:
                        self.cluster.delete(api_version, kind, key[3], self.namespace)
                elif REVERT_ANNOTATION in (metadata.get("annotations") or {}) and key not in unchanged_patches:
                    self._revert(api_version, kind, key[3], metadata["annotations"][REVERT_ANNOTATION])
        if keep is not None:  # the rest of what `keep` owns does not exist yet
            staying.update({m.key: None for m in keep.manifests if m.key not in staying})
        return staying

    def _kinds(self) -> list[tuple[str, str]]:
        return list(dict.fromkeys([*self.dialect.owned_kinds, *_PATCHED_KINDS[self.name]]))

    def _apply_patch(self, patch: Patch, function: str) -> None:
        current = self.cluster.get(patch.api_version, patch.kind, patch.name, patch.namespace)
        if current is not None and current.get("status") and merge(current, patch.patch) != current:
            # As for a manifest: a status left from before this change says nothing about it.
            self._status_before_change[patch.key] = current["status"]
        if current is None:
            if patch.create_if_missing:
                self.cluster.apply(owned(patch.as_object(), function).body)
                return
            raise MeshError(
                f"{patch.kind} {patch.namespace}/{patch.name} does not exist, so {function} cannot be applied to it: "
                "deploy BookInfo first (k8s/bookinfo)"
            )
        if current.get("metadata", {}).get("labels", {}).get(MANAGED_BY_LABEL) == MANAGED_BY:
            self.cluster.apply(owned(merge(current, patch.patch), function).body)  # created by us: ours whole
            return
        revert = revert_patch(patch.patch, current)
        earlier = (current.get("metadata", {}).get("annotations") or {}).get(REVERT_ANNOTATION)
        if earlier:  # patched before and not reverted: the values from before that patch are the originals
            revert = combine_patches(revert, json.loads(earlier))
        marker = {"metadata": {"annotations": {REVERT_ANNOTATION: json.dumps(revert, sort_keys=True)}}}
        body = combine_patches(patch.patch, marker)
        self.cluster.patch(patch.api_version, patch.kind, patch.name, patch.namespace, body)

    def _revert(self, api_version: str, kind: str, name: str, revert_json: str) -> None:
        revert = json.loads(revert_json)
        body = combine_patches(revert, {"metadata": {"annotations": {REVERT_ANNOTATION: None}}})
        self.cluster.patch(api_version, kind, name, self.namespace, body)

    def _states(self, rendering: Rendering) -> list[ObjectState]:
        """Each object's state, read with one list per kind."""
        keys = [*(m.key for m in rendering.manifests), *(p.key for p in rendering.patches)]
        found: dict[tuple[str, str, str, str], Object] = {}
        for api_version, kind, namespace in dict.fromkeys((k[0], k[1], k[2]) for k in keys):
            for obj in self.cluster.list(api_version, kind, namespace):
                found[(api_version, kind, namespace, obj["metadata"]["name"])] = obj
        states = []
        for key in keys:
            api_version, kind, namespace, name = key
            current = found.get(key)
            if current is None:
                states.append(ObjectState(f"{kind} {namespace}/{name}", Readiness.PENDING, "missing"))
            elif _status_predates_change(current, self._status_before_change.get(key)):
                states.append(
                    ObjectState(f"{kind} {namespace}/{name}", Readiness.PENDING, "status from before the change")
                )
            else:
                states.append(object_state(current))
        return states

    # -- facts and sampling ----------------------------------------------------------------------

    def facts(self) -> MeshFacts:
        """mesh_build, proxy_build and mtls_enabled as the cluster shows them now."""
        return self.dialect.facts(self.cluster, self.namespace, self.control_plane_namespace)

    def start_sampling(self, interval_s: float = 1.0) -> ClusterFactsSampling:
        return ClusterFactsSampling(self)


class ClusterFactsSampling:
    """The mesh's identity over a measured window: SMP `mesh_config`'s mesh type, builds and mTLS, read
    from the cluster when the window opens. CPU and memory come from Prometheus (`--prometheus`:
    `prometheus.PrometheusMesh` wraps this sampler); without it the component figures stay empty (count 0)."""

    def __init__(self, mesh: KubernetesMesh) -> None:
        self._mesh = mesh
        self._facts = mesh.facts()
        self._function = mesh.current_function()
        self._params: dict[str, Any] = dict(mesh._current.params) if mesh._current is not None else {}

    def stop(self) -> MeshUsage:
        return MeshUsage(
            mesh=self._mesh.name,
            function=self._function,
            profile={key: str(value) for key, value in self._params.items()},
            mtls_enabled=self._facts.mtls_enabled,
            proxy_version=self._facts.proxy_build,
            mesh_version=self._facts.mesh_build,
        )


def _status_predates_change(current: Object, status_before: Object | None) -> bool:
    """consul-k8s writes its Synced condition without an observedGeneration, and a spec change leaves
    the old condition in place until the controller syncs again (rewriting `lastSyncedTime`): a status
    exactly as it was before meshload changed the object says nothing about the change yet."""
    if status_before is None or not str(current.get("apiVersion", "")).startswith("consul.hashicorp.com/"):
        return False
    return current.get("status") == status_before
