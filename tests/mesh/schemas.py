"""Schema checks for rendered resources, with schemas that come from packages at test time (none is
copied into the repository):

    built-in kinds (Service, Deployment, ...)  kubernetes-validate (PyPI), strict: unknown fields fail
    Istio and Gateway API custom resources     the JSON-schema validators that kubernetes-models
                                               generates from the published CRDs (npm
                                               @kubernetes-models/istio, /gateway-api), run with node

No package reachable from here carries Linkerd's (policy.linkerd.io) or Consul's
(consul.hashicorp.com) CRDs: `@kubernetes-models/linkerd` is published on npm but not served by the
registry this project uses, and nothing on PyPI or npm packages consul-k8s's CRDs. Those kinds are
reported as "no schema" and left to the field tests.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

PACKAGE_DIR = Path(__file__).parent / "crd_schemas"
KUBERNETES_VERSION = "1.33.0"
NPM_TIMEOUT_S = 300
NO_SCHEMA = "no schema for"

UNVALIDATED_GROUPS = ("policy.linkerd.io", "consul.hashicorp.com")


def _cache_root() -> Path:
    return Path(os.environ.get("MESHLOAD_TEST_CACHE", Path.home() / ".cache" / "meshload-tests"))


def crd_schema_dir() -> Path:
    """A folder with the npm packages installed (once per package.json version; cached)."""
    package_json = (PACKAGE_DIR / "package.json").read_bytes()
    folder = _cache_root() / f"crd-schemas-{hashlib.sha256(package_json).hexdigest()[:12]}"
    marker = folder / "node_modules" / "@kubernetes-models" / "gateway-api" / "package.json"
    if not marker.exists():
        npm = shutil.which("npm")
        if npm is None or shutil.which("node") is None:
            pytest.fail("node and npm are needed to validate against the meshes' CRD schemas (scripts/install-deps)")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "package.json").write_bytes(package_json)
        installed = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT_S,
            check=False,
        )
        if installed.returncode != 0:
            pytest.fail(f"npm install of the CRD schema packages failed: {installed.stderr.strip()[-800:]}")
    shutil.copyfile(PACKAGE_DIR / "validate.mjs", folder / "validate.mjs")
    return folder


def validate_custom(objects: list[dict[str, Any]]) -> list[str | None]:
    """Per object: None when it validates against its CRD schema, else the error (or "no schema for")."""
    folder = crd_schema_dir()
    node = shutil.which("node")
    assert node is not None
    ran = subprocess.run(
        [node, "validate.mjs"],
        cwd=folder,
        input=json.dumps(objects),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    results: list[str | None] = json.loads(ran.stdout)
    return results


def validate_builtin(obj: dict[str, Any]) -> str | None:
    """None when `obj` validates against the Kubernetes schema (strict), else the error."""
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = "/".join(str(part) for part in exc.absolute_path)
        return f"{obj['kind']} {obj['metadata'].get('name')}: {where}: {exc.message}"
    return None


def is_builtin(obj: dict[str, Any]) -> bool:
    group = str(obj["apiVersion"]).rpartition("/")[0]
    return group in ("", "apps", "batch", "policy", "rbac.authorization.k8s.io", "networking.k8s.io")
