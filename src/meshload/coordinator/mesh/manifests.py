"""What a mesh adapter renders for one function: whole objects meshload owns, merge patches on objects
it does not own, and notes on where the mesh's semantics differ from the testbed's.

    Manifest   a whole object (a VirtualService, a ServiceRouter, ...): created or replaced on apply,
               deleted on remove; labelled `app.kubernetes.io/managed-by: meshload`
    Patch      a JSON merge patch (RFC 7386) on an object someone else owns (a BookInfo Service's
               annotations, a Deployment's pod template, Consul's global ProxyDefaults): applied on
               apply and reverted on remove to the values it replaced
    Rendering  one function's manifests and patches for one mesh and namespace, printable as YAML

Each rendering is complete: the mesh's baseline with the one function in force, so applying a
rendering alone puts that function in force alone.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "meshload"
FUNCTION_ANNOTATION = "meshload/function"

Object = dict[str, Any]


@dataclass(frozen=True)
class Manifest:
    """A whole object meshload owns."""

    body: Object

    @property
    def api_version(self) -> str:
        return str(self.body["apiVersion"])

    @property
    def kind(self) -> str:
        return str(self.body["kind"])

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.body["metadata"].get("namespace", ""))

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.api_version, self.kind, self.namespace, self.name)


@dataclass(frozen=True)
class Patch:
    """A JSON merge patch on an object meshload does not own.

    With `create_if_missing`, an object that does not exist is created whole (from `patch` plus the
    identity) and then owned: deleted on remove, like a Manifest.
    """

    api_version: str
    kind: str
    name: str
    namespace: str
    patch: Object
    why: str
    create_if_missing: bool = False

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.api_version, self.kind, self.namespace, self.name)

    def as_object(self) -> Object:
        """The patch as a partial object of its kind (how it is shown and, when missing, created)."""
        patch = copy.deepcopy(self.patch)
        metadata = {"name": self.name, "namespace": self.namespace, **patch.pop("metadata", {})}
        return {"apiVersion": self.api_version, "kind": self.kind, "metadata": metadata, **patch}


@dataclass(frozen=True)
class Rendering:
    """One function's resources for one mesh in one namespace."""

    mesh: str
    function: str
    params: dict[str, str]
    namespace: str
    manifests: tuple[Manifest, ...] = ()
    patches: tuple[Patch, ...] = ()
    notes: tuple[str, ...] = ()  # where the mesh's semantics differ from the testbed's
    ignored: tuple[str, ...] = ()  # parameters the mesh has no equivalent for (partial support)

    def objects(self) -> Iterator[Object]:
        """Every owned object and every patch, as the API sees them (patches as partial objects)."""
        for manifest in self.manifests:
            yield manifest.body
        for patch in self.patches:
            yield patch.as_object()

    def to_yaml(self) -> str:
        """Multi-document YAML for review and GitOps; patches and notes as comments."""
        params = " ".join(f"{key}={value}" for key, value in sorted(self.params.items()))
        lines = [f"# meshload: {self.mesh} {self.function} {params}".rstrip(), f"# namespace: {self.namespace}"]
        lines += [f"# note: {note}" for note in self.notes]
        lines += [f"# not applied on {self.mesh}: {name}" for name in self.ignored]
        if not self.manifests and not self.patches:
            lines.append("# nothing to apply: the mesh's baseline is this function's configuration")
        documents = ["\n".join(lines)]
        for manifest in self.manifests:
            documents.append(_dump(manifest.body))
        for patch in self.patches:
            how = "merge patch (created if missing)" if patch.create_if_missing else "merge patch"
            comment = f"# {how} on the existing {patch.kind} {patch.namespace}/{patch.name}: {patch.why}"
            documents.append(comment + "\n" + _dump(patch.as_object()))
        return "\n---\n".join(documents) + "\n"


class _Dumper(yaml.SafeDumper):
    """Writes repeated values out in full: anchors and aliases (`&id001`) puzzle reviewers and GitOps diffs."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def _dump(body: Object) -> str:
    return yaml.dump(body, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1000).rstrip("\n")


def owned(body: Object, function: str) -> Manifest:
    """`body` labelled as meshload's, with the function it belongs to."""
    body = copy.deepcopy(body)
    metadata = body.setdefault("metadata", {})
    metadata.setdefault("labels", {})[MANAGED_BY_LABEL] = MANAGED_BY
    metadata.setdefault("annotations", {})[FUNCTION_ANNOTATION] = function
    return Manifest(body)


def revert_patch(patch: Object, current: Object) -> Object:
    """The merge patch that undoes `patch` on `current`: each patched leaf back to its old value, or
    removed (null) where `current` had none. Lists are replaced whole by a merge patch, so whole lists
    come back."""
    revert: Object = {}
    for key, value in patch.items():
        old = current.get(key) if isinstance(current, dict) else None
        if isinstance(value, dict) and isinstance(old, dict):
            revert[key] = revert_patch(value, old)
        else:
            revert[key] = copy.deepcopy(old)
    return revert


def merge_patch_between(current: Object, desired: Object) -> Object:
    """The JSON merge patch that turns `current` into `desired`: changed values set, vanished keys
    null, lists replaced whole."""
    patch: Object = {}
    for key in current.keys() - desired.keys():
        patch[key] = None
    for key, value in desired.items():
        old = current.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            nested = merge_patch_between(old, value)
            if nested:
                patch[key] = nested
        elif old != value or key not in current:
            patch[key] = copy.deepcopy(value)
    return patch


def combine_patches(base: Object, override: Object) -> Object:
    """Two merge patches as one: `override`'s values win, nulls included (they still mean "remove")."""
    combined: Object = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(combined.get(key), dict):
            combined[key] = combine_patches(combined[key], value)
        else:
            combined[key] = copy.deepcopy(value)
    return combined


def merge(target: Object, patch: Object) -> Object:
    """`target` with the JSON merge patch applied (RFC 7386): what the API server stores."""
    result = copy.deepcopy(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


@dataclass
class Applied:
    """What an adapter put in the cluster for the function in force (to take it away again)."""

    function: str = ""
    rendering: Rendering | None = None
    manifests: dict[tuple[str, str, str, str], Manifest] = field(default_factory=dict)
    patches: dict[tuple[str, str, str, str], Patch] = field(default_factory=dict)
