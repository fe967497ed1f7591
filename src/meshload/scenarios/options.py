"""The plan of `meshload run`, built from its command-line options (and an optional scenario file).

Without a scenario, the URL and the options are the whole plan, and exactly one of `--rate` and
`--concurrency` says how much load. With a scenario, the file is the plan and every option given
overrides its key; the URL, if given too, is the base for the file's relative target paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import UsageError
from .file_format import DEFAULT_CONNECT_TIMEOUT_S, DEFAULT_TIMEOUT_S
from .files import load_plan_file
from .grpc_calls import GrpcTargetProblem, check_grpc_plan, grpc_schema
from .grpc_target import is_grpc_url
from .locustfiles import LocustfileProblem, read_locustfile
from .plan import Arrival, ClosedLoop, GrpcSchema, LocustUsers, OpenLoop, Plan, Target, header_problem
from .protos import ProtoError

DEFAULT_DURATION_S = 30.0
_HEADER_EXAMPLE = '"Name: value"'
_OPTION_OF_FIELD = {
    "rate": "--rate",
    "concurrency": "--concurrency",
    "duration_s": "--duration",
    "warmup_s": "--warmup",
    "timeout_s": "--timeout",
    "max_connections": "--connections",
    "url": "URL",
    "method": "--method",
    "arrival": "--arrival",
    "max_streams_per_connection": "--streams",
    "locust": "--locustfile",
}
_OPTION_OF_GRPC_KEY = {"url": "URL", "body": "--body/--data", "headers": "-H/--header"}
_URL_EXAMPLE = "http://127.0.0.1:8080/productpage or grpc://127.0.0.1:9090/package.Service/Method"


def plan_from_options(
    url: str | None,
    scenario: str | None,
    *,
    rate: float | None = None,
    concurrency: int | None = None,
    duration_s: float | None = None,
    warmup_s: float | None = None,
    arrival: Arrival | None = None,
    connections: int | None = None,
    method: str | None = None,
    headers: list[str] | None = None,
    body: str | None = None,
    timeout_s: float | None = None,
    labels: list[str] | None = None,
    base_url: str | None = None,
    http2: bool | None = None,
    streams: int | None = None,
    proto: list[str] | None = None,
    import_paths: list[str] | None = None,
    tls_verify: bool | None = None,
    ca_file: str | None = None,
    locustfile: str | None = None,
) -> Plan:
    """The plan `meshload run` executes. None means "not given"; a bad value raises UsageError
    naming the option (`-H/--header: "x" is not a header; use "Name: value"`).

    With `locustfile`, the locustfile's users make the requests and the URL is their host (without a
    URL, `base_url`: the testbed's ingress)."""
    if rate is not None and concurrency is not None:
        raise UsageError(
            "--rate and --concurrency exclude each other: give --rate for an open loop, --concurrency for a closed one"
        )
    if concurrency is not None and arrival == "poisson":
        raise UsageError("--arrival poisson applies to --rate, not to --concurrency")
    _check_positive(
        ("--rate", rate),
        ("--concurrency", concurrency),
        ("--duration", duration_s),
        ("--connections", connections),
        ("--timeout", timeout_s),
        ("--streams", streams),
    )
    if warmup_s is not None and warmup_s < 0:
        raise UsageError(f"--warmup: must not be negative (got {warmup_s:g})")
    header_map = parse_headers(headers or [])
    label_map = parse_labels(labels or [])
    if scenario is not None:
        overrides = _scenario_overrides(
            rate=rate,
            concurrency=concurrency,
            duration_s=duration_s,
            warmup_s=warmup_s,
            arrival=arrival,
            connections=connections,
            method=method,
            body=body,
            timeout_s=timeout_s,
        )
        overrides.update(
            _given(
                http2=http2,
                max_streams_per_connection=streams,
                proto=proto or None,
                import_paths=import_paths or None,
                tls_verify=tls_verify,
                tls_ca_file=ca_file,
                locustfile=locustfile,
            )
        )
        if base_url or url:
            overrides["base_url"] = base_url or url
        # Paths as tuples: header and label names may themselves hold dots ("smp.function").
        overrides.update({("headers", name): value for name, value in header_map.items()})
        overrides.update({("labels", name): value for name, value in label_map.items()})
        return load_plan_file(scenario, overrides)
    url = _target_url(url, base_url, locustfile)
    if rate is None and concurrency is None:
        raise UsageError("give --rate (requests per second, open loop) or --concurrency (clients, closed loop)")
    if locustfile is not None and (method or body or header_map or http2 or streams):
        raise UsageError(
            "--method, --body, -H/--header, --http2 and --streams describe meshload's own requests; "
            "with --locustfile the locustfile's users make them: remove these options"
        )
    method_text = (method or ("POST" if body and not is_grpc_url(url) else "GET")).upper()
    if not method_text.isascii() or not method_text.isalpha():
        raise UsageError(f"--method: {method!r} is not an HTTP method; use e.g. GET or POST")
    try:
        load = (
            OpenLoop.model_validate({"rate": rate, "arrival": arrival or "constant"})
            if rate is not None
            else ClosedLoop.model_validate({"concurrency": concurrency})
        )
        plan = Plan(
            name="run",
            targets=(Target(url=url),),
            method=method_text,
            headers=header_map,
            body=body,
            load=load,
            duration_s=DEFAULT_DURATION_S if duration_s is None else duration_s,
            warmup_s=warmup_s or 0.0,
            timeout_s=DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s,
            connect_timeout_s=DEFAULT_CONNECT_TIMEOUT_S,
            http2=bool(http2),
            tls_verify=tls_verify is not False,
            tls_ca_pem=_ca_pem(ca_file),
            grpc=_grpc_schema(proto or [], import_paths or []),
            locust=_locust_users(locustfile),
            labels=label_map,
            **_given(max_connections=connections, max_streams_per_connection=streams),
        )
    except ValidationError as exc:
        raise _usage_error_from(exc) from exc
    return _checked_grpc(plan)


def _target_url(url: str | None, base_url: str | None, locustfile: str | None) -> str:
    """The run's URL: as given, joined to `base_url` when relative; with a locustfile, the users' host
    (without a URL, `base_url` itself)."""
    if url is None and locustfile is not None and base_url:
        url = base_url
    if url is None:
        what = "the host of the locustfile's users" if locustfile is not None else "the URL to load"
        raise UsageError(f"give {what}, or --scenario with a plan file or built-in scenario name")
    if base_url and "://" not in url:
        url = base_url.rstrip("/") + "/" + url.lstrip("/")
    if not url.startswith(("http://", "https://")) and not is_grpc_url(url):
        raise UsageError(f"URL: {url!r} is not an http://, https://, grpc:// or grpcs:// URL; use e.g. {_URL_EXAMPLE}")
    return url


def _given(**values: Any) -> dict[str, Any]:
    """The values that were given (not None)."""
    return {key: value for key, value in values.items() if value is not None}


def _grpc_schema(proto: list[str], import_paths: list[str]) -> GrpcSchema:
    if import_paths and not proto:
        raise UsageError("--import-path applies to proto files; give --proto too")
    try:
        return grpc_schema([Path(file) for file in proto], [Path(folder) for folder in import_paths])
    except ProtoError as exc:
        raise UsageError(f"--proto: {exc}") from exc


def _locust_users(locustfile: str | None) -> LocustUsers | None:
    if locustfile is None:
        return None
    try:
        return read_locustfile(locustfile)
    except LocustfileProblem as exc:
        raise UsageError(f"--locustfile: {exc}") from exc


def _checked_grpc(plan: Plan) -> Plan:
    if plan.protocol == "grpc":
        try:
            check_grpc_plan(plan)
        except GrpcTargetProblem as exc:
            raise UsageError(f"{_OPTION_OF_GRPC_KEY[exc.key]}: {exc}") from exc
    return plan


def _ca_pem(ca_file: str | None) -> str:
    if ca_file is None:
        return ""
    path = Path(ca_file).expanduser()
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--ca-file: cannot read {path} ({exc}); give a PEM file of CA certificates") from exc
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise UsageError(f"--ca-file: {path} holds no PEM certificate; give a PEM file of CA certificates")
    return text


def parse_headers(headers: list[str]) -> dict[str, str]:
    """`["Accept: text/html", "x-user: jason"]` as a dict; a malformed entry raises UsageError."""
    parsed: dict[str, str] = {}
    for header in headers:
        name, colon, value = header.partition(":")
        name = name.strip()
        if not colon or not name or any(char.isspace() for char in name) or not name.isascii():
            raise UsageError(f'-H/--header: "{header}" is not a header; use {_HEADER_EXAMPLE}')
        problem = header_problem(name, value.strip())
        if problem is not None:
            raise UsageError(f"-H/--header: {problem}")
        parsed[name] = value.strip()
    return parsed


def parse_labels(labels: list[str]) -> dict[str, str]:
    """`["function=retries", "level=200"]` as a dict; a malformed entry raises UsageError."""
    parsed: dict[str, str] = {}
    for label in labels:
        key, equals, value = label.partition("=")
        if not equals or not key.strip():
            raise UsageError(f'--label: "{label}" is not a label; use key=value')
        parsed[key.strip()] = value.strip()
    return parsed


def _scenario_overrides(
    *,
    rate: float | None,
    concurrency: int | None,
    duration_s: float | None,
    warmup_s: float | None,
    arrival: Arrival | None,
    connections: int | None,
    method: str | None,
    body: str | None,
    timeout_s: float | None,
) -> dict[str | tuple[str, ...], object]:
    """The file keys the given options replace. A new load kind replaces the file's whole load."""
    overrides: dict[str | tuple[str, ...], object] = {}
    if rate is not None:
        overrides.update({"load.rate": rate, "load.concurrency": None, "load.think_time": None, "load.stages": None})
    if concurrency is not None:
        overrides.update(
            {"load.concurrency": concurrency, "load.rate": None, "load.arrival": None, "load.stages": None}
        )
    if arrival is not None and concurrency is None:
        overrides["load.arrival"] = arrival
    for key, value in (
        ("duration", duration_s),
        ("warmup", warmup_s),
        ("max_connections", connections),
        ("method", method),
        ("body", body),
        ("timeout", timeout_s),
    ):
        if value is not None:
            overrides[key] = value
    return overrides


def _check_positive(*named_values: tuple[str, float | int | None]) -> None:
    for option, value in named_values:
        if value is not None and not value > 0:
            raise UsageError(f"{option}: must be greater than 0 (got {value:g})")


def _usage_error_from(exc: ValidationError) -> UsageError:
    problem = exc.errors(include_url=False)[0]
    field = next((str(part) for part in reversed(problem["loc"]) if str(part) in _OPTION_OF_FIELD), None)
    option = _OPTION_OF_FIELD.get(field or "", "options")
    message = problem["msg"].replace("Input should be", "must be").replace("Value error, ", "")
    value = problem.get("input")
    # A validator's own sentence names the value already.
    named = problem["type"] == "value_error"
    got = f" (got {value!r})" if isinstance(value, (int, float, str)) and not named else ""
    return UsageError(f"{option}: {message}{got}")
