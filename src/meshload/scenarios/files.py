"""Plan files (YAML or JSON, meshload's format or a Meshery/SMP test file) and built-in scenarios.

meshload's own format, in short (FORMAT.md beside this module has every key and default):

    name: bookinfo-mix                 # default: the file's name
    base_url: http://127.0.0.1:8080    # relative target URLs are joined to it
    targets:                           # or a single `url: ...`
      - {url: /productpage, weight: 8}
      - {url: /api/v1/products, weight: 1, method: GET, headers: {accept: application/json}}
    method: GET                        # default for targets; also headers, body, cookies
    load: {rate: 200, arrival: poisson}        # or {concurrency: 16, think_time: 100ms}
    #     {rate: 50, stages: [{duration: 30s, rate: 200}, {duration: 1m, rate: 200}]}
    duration: 2m                       # measured; optional with stages (they set the length)
    warmup: 10s                        # excluded from the statistics
    timeout: 5s
    connect_timeout: 3s
    tls_verify: true
    tls_ca_file: ca.pem                # extra CAs for https/grpcs
    max_connections: 64                # per worker (HTTP/1.1 open loop: most; HTTP/2, gRPC: opened, 1)
    http2: false                       # http(s) over HTTP/2; max_streams_per_connection: 100
    proto: svc.proto                   # gRPC targets (grpc://host:port/pkg.Service/Method): the methods'
    import_paths: [include]            #   proto files; without them, server reflection
    seed: 0
    labels: {function: retries}
    bookinfo_user: jason               # send BookInfo's signed session cookie for this user
    locustfile: bookinfo               # or: a locustfile's users make the requests (rate: tasks/s)

Every problem is a `PlanError` naming the file and the line of the offending key, e.g.
`plans/x.yaml:7: load.rate: must be greater than 0 (got -5)`. A file whose top level has `test:` is
read as a Meshery/SMP test file (see `meshery.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import PlanError
from . import meshery
from .file_format import PlanFile, to_plan
from .plan import Plan
from .source import SourceDocument, read_document
from .validation import plan_error_from

BUILTIN_DIR = Path(__file__).with_name("builtin")
# Study plans (`study_file.py`) share the folder; they are not scenarios a run can load.
_STUDY_PREFIX = "study-"
_PLAN_SUFFIXES = (".yaml", ".yml", ".json")


def list_builtin() -> list[str]:
    """Names of the built-in scenarios, e.g. `["bookinfo-login", "bookinfo-mix", ...]`."""
    return sorted(path.stem for path in BUILTIN_DIR.glob("*.yaml") if not path.stem.startswith(_STUDY_PREFIX))


def builtin_scenario(name: str) -> Path:
    """The file of the built-in scenario `name` ("bookinfo-mix" or "bookinfo-mix.yaml")."""
    stem = name.removesuffix(".yaml")
    path = BUILTIN_DIR / f"{stem}.yaml"
    if stem not in list_builtin():
        raise PlanError(
            f"{name!r} is neither a plan file nor a built-in scenario; the built-in ones are: "
            + ", ".join(list_builtin())
        )
    return path


def _plan_path(path: Path | str) -> Path:
    """A plan file, or the file of a built-in scenario named without its suffix."""
    path = Path(path)
    if not path.exists() and path.suffix.lower() not in _PLAN_SUFFIXES and len(path.parts) == 1:
        path = builtin_scenario(str(path))
    return path


def calls_grpc_base(path: Path | str) -> bool:
    """Whether a plan file's relative targets are gRPC methods (its `base_url` is grpc:// or
    grpcs://): a run against the testbed then joins them to the testbed's gRPC ingress, not its HTTP one."""
    document = read_document(_plan_path(path))
    base_url = document.data.get("base_url") if isinstance(document.data, dict) else None
    return isinstance(base_url, str) and base_url.startswith(("grpc://", "grpcs://"))


def load_plan_file(
    path: Path | str,
    overrides: Mapping[str | tuple[str, ...], Any] | None = None,
    *,
    overrides_origin: str = "the command line",
) -> Plan:
    """The plan in a file (or a built-in scenario's name), with `overrides` applied.

    `overrides` use the file's key names, dotted for nested keys (`{"base_url": ..., "load.rate": 200,
    "duration": "2m"}`) or as a tuple when a key holds a dot (`("labels", "smp.function")`); a value
    of None removes the key. An error in an overridden value says it came from `overrides_origin`
    rather than pointing into the file.
    """
    path = _plan_path(path)
    document = read_document(path)
    if not isinstance(document.data, dict):
        raise document.error((), "must be a mapping of keys (url or targets, load, duration, ...); see FORMAT.md")
    if meshery.is_meshery_test(document.data):
        # Its own fields were checked against their lines; the translation has no lines of its own.
        document = SourceDocument(document.name, meshery.plan_document(document, default_name=path.stem))
    for key, value in (overrides or {}).items():
        key_path = key if isinstance(key, tuple) else tuple(key.split("."))
        document.set_from(key_path, value, overrides_origin)
    try:
        entry = PlanFile.model_validate(document.data)
    except ValidationError as exc:
        raise plan_error_from(exc, document, PlanFile) from exc
    return to_plan(entry, document, default_name=path.stem, base_dir=path.resolve().parent)
