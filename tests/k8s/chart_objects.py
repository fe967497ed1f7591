"""The rendered chart as objects to ask questions of: by kind and name, and its pod templates."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from chart_check import Rendered  # scripts/, on the path (pytest's `pythonpath`)


@dataclass(frozen=True)
class PodTemplate:
    """A pod spec and its metadata, wherever it sits (a Pod, a Deployment, a CronJob's Job...)."""

    owner: str  # "Kind/name" of the object holding it
    metadata: dict[str, Any]
    spec: dict[str, Any]

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.metadata.get("labels", {}))

    def containers(self) -> list[dict[str, Any]]:
        return [*self.spec.get("initContainers", []), *self.spec["containers"]]


class ChartObjects:
    def __init__(self, rendered: Rendered) -> None:
        self.rendered = rendered
        self.objects = rendered.objects
        self.notes = rendered.notes

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found = [obj for obj in self.of_kind(kind) if obj["metadata"]["name"] == name]
        assert len(found) == 1, f"{kind}/{name}: {len(found)} rendered; names: {self.names(kind)}"
        return found[0]

    def one(self, kind: str) -> dict[str, Any]:
        found = self.of_kind(kind)
        assert len(found) == 1, f"expected one {kind}, got {self.names(kind)}"
        return found[0]

    def names(self, kind: str) -> list[str]:
        return [obj["metadata"]["name"] for obj in self.of_kind(kind)]

    def component(self, kind: str, component: str) -> list[dict[str, Any]]:
        return [
            obj
            for obj in self.of_kind(kind)
            if obj["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component
        ]

    def pod_templates(self) -> Iterator[PodTemplate]:
        for obj in self.objects:
            owner = f"{obj['kind']}/{obj['metadata']['name']}"
            if obj["kind"] == "Pod":
                yield PodTemplate(owner, obj["metadata"], obj["spec"])
            elif obj["kind"] in ("Deployment", "StatefulSet", "Job"):
                template = obj["spec"]["template"]
                yield PodTemplate(owner, template["metadata"], template["spec"])
            elif obj["kind"] == "CronJob":
                template = obj["spec"]["jobTemplate"]["spec"]["template"]
                yield PodTemplate(owner, template["metadata"], template["spec"])

    def pod_template(self, owner: str) -> PodTemplate:
        found = [template for template in self.pod_templates() if template.owner == owner]
        assert len(found) == 1, f"no pod template of {owner}; have {[t.owner for t in self.pod_templates()]}"
        return found[0]
