"""The plan file as the user writes it (durations as text, relative paths, cookies), and its `Plan`.

The models here use the file's own key names, so a validation error's location is the key path into
the file. Checks that involve several keys (url or targets, stages against duration) are done in
`to_plan`, which names the key to fix. The format is described in FORMAT.md beside this module.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from .bookinfo_session import SESSION_COOKIE, signed_session
from .durations import duration_ns
from .grpc_calls import GrpcTargetProblem, check_grpc_plan, grpc_schema
from .locustfiles import LocustfileProblem, read_locustfile
from .plan import (
    ClosedLoop,
    GrpcSchema,
    LocustUsers,
    OpenLoop,
    Plan,
    Stage,
    Target,
    check_headers,
    check_rate,
    check_timeout_s,
)
from .protos import ProtoError
from .source import KeyPath, SourceDocument

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_CONNECT_TIMEOUT_S = 3.0
_URL_SCHEMES = ("http://", "https://", "grpc://", "grpcs://")


def _seconds(value: Any) -> Any:
    """A duration string ("30s", "1m30s") as seconds; numbers are seconds already."""
    if isinstance(value, str):
        return duration_ns(value) / 1e9
    return value


def _text(value: Any) -> Any:
    """Header and label values written as YAML numbers or booleans, as the text the user typed."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return value


def _json_text(value: Any) -> Any:
    """A body written as a YAML mapping or list (a gRPC request message, a JSON body) as JSON text."""
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value


def _paths(value: Any) -> Any:
    """One path or a list of them, as a list."""
    return [value] if isinstance(value, str) else value


def _sendable_cookies(cookies: dict[str, str]) -> dict[str, str]:
    """Cookies go into one Cookie header: each `name=value` must be fit to send there."""
    for name, value in cookies.items():
        check_headers({"Cookie": f"{name}={value}"})
    return cookies


Seconds = Annotated[float, BeforeValidator(_seconds)]
Text = Annotated[str, BeforeValidator(_text)]
Body = Annotated[str, BeforeValidator(_json_text)]
Paths = Annotated[list[str], BeforeValidator(_paths)]
Headers = Annotated[dict[str, Text], AfterValidator(check_headers)]
Cookies = Annotated[dict[str, Text], AfterValidator(_sendable_cookies)]


class _FileModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StageEntry(_FileModel):
    """`{duration: 30s, rate: 200}`: ramp linearly to `rate` over `duration`."""

    duration: Seconds = Field(gt=0)
    rate: float = Field(ge=0)

    _plannable_rate = field_validator("rate")(check_rate)


class LoadEntry(_FileModel):
    """`load:`: an open loop (`rate`, `arrival`, `stages`) or a closed loop (`concurrency`, `think_time`)."""

    rate: float | None = Field(None, gt=0)
    concurrency: int | None = Field(None, gt=0)
    arrival: Literal["constant", "poisson"] | None = None
    stages: list[StageEntry] = []
    think_time: Seconds | None = Field(None, ge=0)

    @field_validator("rate")
    @classmethod
    def _plannable_rate(cls, rate: float | None) -> float | None:
        return None if rate is None else check_rate(rate)


class TargetEntry(_FileModel):
    """One entry of `targets:`; `url` may be a path relative to the file's `base_url`."""

    url: str
    weight: float = Field(1.0, gt=0)
    method: str | None = None
    headers: Headers = {}
    body: Body | None = None


class PlanFile(_FileModel):
    """A whole plan file. Keys and defaults are documented in FORMAT.md."""

    name: str | None = None
    description: str = ""
    base_url: str | None = None
    url: str | None = None
    targets: list[TargetEntry] | None = None
    method: str = "GET"
    headers: Headers = {}
    cookies: Cookies = {}
    bookinfo_user: str | None = None
    body: Body | None = None
    load: LoadEntry
    duration: Seconds | None = Field(None, gt=0)
    warmup: Seconds = Field(0.0, ge=0)
    timeout: Seconds = Field(DEFAULT_TIMEOUT_S, gt=0)
    connect_timeout: Seconds = Field(DEFAULT_CONNECT_TIMEOUT_S, gt=0)
    tls_verify: bool = True
    tls_ca_file: str | None = None
    max_connections: int | None = Field(None, gt=0)
    http2: bool = False
    max_streams_per_connection: int | None = Field(None, gt=0)
    proto: Paths = []
    import_paths: Paths = []
    locustfile: str | None = None
    seed: int = 0
    labels: dict[str, Text] = {}

    _fits_the_histograms = field_validator("timeout", "connect_timeout")(check_timeout_s)


def to_plan(entry: PlanFile, document: SourceDocument, *, default_name: str, base_dir: Path | None = None) -> Plan:
    """The `Plan` a validated file describes; a cross-key problem raises PlanError at the key to fix.

    Relative paths in the file (`proto`, `import_paths`, `tls_ca_file`) are relative to `base_dir`,
    the file's folder; those given on the command line, to the working directory."""
    targets = _targets(entry, document)
    load = _load_model(entry, document)
    duration_s = _duration_s(entry, document)
    headers = _with_cookies(dict(entry.headers), entry)
    optional = {
        key: value
        for key, value in (
            ("max_connections", entry.max_connections),
            ("max_streams_per_connection", entry.max_streams_per_connection),
        )
        if value is not None
    }
    try:
        plan = Plan(
            name=entry.name or default_name,
            targets=tuple(targets),
            method=_method(entry.method, ("method",), document),
            headers=headers,
            body=entry.body,
            load=load,
            duration_s=duration_s,
            warmup_s=entry.warmup,
            timeout_s=entry.timeout,
            connect_timeout_s=entry.connect_timeout,
            tls_verify=entry.tls_verify,
            tls_ca_pem=_ca_pem(entry, document, base_dir),
            http2=entry.http2,
            grpc=_grpc_schema(entry, document, base_dir),
            locust=_locust_users(entry, document, base_dir),
            seed=entry.seed,
            labels=dict(entry.labels),
            **optional,
        )
    except ValidationError as exc:  # a rule of Plan that the file model does not repeat
        problem = exc.errors(include_url=False)[0]
        where = ".".join(map(str, problem["loc"]))
        message = problem["msg"].removeprefix("Value error, ")
        raise document.error((), f"{where}: {message}" if where else message) from exc
    if plan.protocol == "grpc":
        try:
            check_grpc_plan(plan)
        except GrpcTargetProblem as exc:
            raise document.error(_target_key(entry, exc.index, exc.key), str(exc)) from exc
    return plan


def _file_path(text: str, key: KeyPath, document: SourceDocument, base_dir: Path | None) -> Path:
    """A path of the file (relative to the file's folder) or of the command line (to the working one)."""
    path = Path(text).expanduser()
    if path.is_absolute() or document.origin_of(key) is not None or base_dir is None:
        return path
    return base_dir / path


def _grpc_schema(entry: PlanFile, document: SourceDocument, base_dir: Path | None) -> GrpcSchema:
    files = [_file_path(text, ("proto",), document, base_dir) for text in entry.proto]
    folders = [_file_path(text, ("import_paths",), document, base_dir) for text in entry.import_paths]
    if entry.import_paths and not files:
        raise document.error(("import_paths",), "applies to proto files; give proto too, or remove it")
    try:
        return grpc_schema(files, folders)
    except ProtoError as exc:
        raise document.error(("proto",), str(exc)) from exc


def _locust_users(entry: PlanFile, document: SourceDocument, base_dir: Path | None) -> LocustUsers | None:
    if entry.locustfile is None:
        return None
    folder = None if document.origin_of(("locustfile",)) is not None else base_dir
    try:
        return read_locustfile(entry.locustfile, base_dir=folder)
    except LocustfileProblem as exc:
        raise document.error(("locustfile",), str(exc)) from exc


def _ca_pem(entry: PlanFile, document: SourceDocument, base_dir: Path | None) -> str:
    if entry.tls_ca_file is None:
        return ""
    path = _file_path(entry.tls_ca_file, ("tls_ca_file",), document, base_dir)
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise document.error(
            ("tls_ca_file",), f"cannot read {path} ({exc}); give a PEM file of CA certificates"
        ) from exc
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise document.error(("tls_ca_file",), f"{path} holds no PEM certificate; give a PEM file of CA certificates")
    return text


def _target_key(entry: PlanFile, index: int, key: str) -> KeyPath:
    """Where the value behind a gRPC target's problem is written: the target's own key, or the plan's."""
    if entry.url is not None:
        return (key,) if key != "url" else ("url",)
    target = (entry.targets or [])[index]
    own = {"url": True, "body": target.body is not None, "headers": bool(target.headers)}[key]
    return ("targets", index, key) if own else (key,)


def _targets(entry: PlanFile, document: SourceDocument) -> list[Target]:
    if entry.url is not None and entry.targets is not None:
        raise document.error(("url",), "give either url or targets, not both")
    base_url = entry.base_url
    if base_url is not None and not base_url.startswith(_URL_SCHEMES):
        raise document.error(("base_url",), f"{base_url!r} must start with http://, https://, grpc:// or grpcs://")
    if entry.url is None and not entry.targets:
        if entry.locustfile is not None and base_url is not None:
            return [Target(url=_checked_url(base_url, ("base_url",), document))]  # the users' host
        raise document.error(("targets",), "is required: give url (one URL) or targets (a list of them)")
    if entry.url is not None:
        return [Target(url=_absolute_url(entry.url, base_url, ("url",), document))]
    return [
        Target(
            url=_absolute_url(target.url, base_url, ("targets", index, "url"), document),
            weight=target.weight,
            method=_method(target.method, ("targets", index, "method"), document) if target.method else None,
            headers=dict(target.headers),
            body=target.body,
        )
        for index, target in enumerate(entry.targets or ())
    ]


def _absolute_url(url: str, base_url: str | None, where: tuple, document: SourceDocument) -> str:
    if url.startswith(_URL_SCHEMES):
        return _checked_url(url, where, document)
    if "://" in url:
        raise document.error(where, f"{url!r} is not an http://, https://, grpc:// or grpcs:// URL")
    if base_url is None:
        raise document.error(
            where, f"{url!r} is relative and no base_url is set; set base_url (e.g. --base-url http://127.0.0.1:8080)"
        )
    # Concatenate rather than urljoin: an ingress mounted under a path prefix keeps its prefix.
    return _checked_url(base_url.rstrip("/") + "/" + url.lstrip("/"), where, document)


def _checked_url(url: str, where: tuple, document: SourceDocument) -> str:
    """`url`, if a target may have it (a gRPC URL must name its method)."""
    try:
        Target.model_validate({"url": url})
    except ValidationError as exc:
        raise document.error(where, str(exc.errors(include_url=False)[0]["msg"]).removeprefix("Value error, ")) from exc
    return url


def _method(method: str, where: tuple, document: SourceDocument) -> str:
    if not method.isascii() or not method.isalpha():
        raise document.error(where, f"{method!r} is not an HTTP method; use e.g. GET or POST")
    return method.upper()


def _load_model(entry: PlanFile, document: SourceDocument) -> OpenLoop | ClosedLoop:
    load = entry.load
    if load.concurrency is not None:
        for key in ("rate", "arrival", "stages"):
            if getattr(load, key):
                raise document.error(
                    ("load", key), "cannot be combined with concurrency (a closed loop); remove one of them"
                )
        return ClosedLoop(concurrency=load.concurrency, think_time_s=load.think_time or 0.0)
    if load.think_time is not None:
        raise document.error(("load", "think_time"), "applies to concurrency (a closed loop), not to rate")
    if load.rate is None and not load.stages:
        raise document.error(("load",), "give rate (requests per second) or concurrency (clients)")
    # Stages ramp from `rate`; without it they start at the first stage's rate.
    rate = load.rate if load.rate is not None else load.stages[0].rate
    if rate <= 0:
        raise document.error(("load", "rate"), "is needed when the first stage's rate is 0: the ramp starts from it")
    stages = tuple(Stage(duration_s=stage.duration, rate=stage.rate) for stage in load.stages)
    return OpenLoop(rate=rate, arrival=load.arrival or "constant", stages=stages)


def _duration_s(entry: PlanFile, document: SourceDocument) -> float:
    stages = entry.load.stages if entry.load.concurrency is None else []
    if not stages:
        if entry.duration is None:
            raise document.error(("duration",), "is required (e.g. duration: 60s)")
        return entry.duration
    staged_s = sum(stage.duration for stage in stages)
    if entry.duration is None:
        if staged_s <= entry.warmup:
            raise document.error(
                ("warmup",), f"is {entry.warmup:g}s but the stages last only {staged_s:g}s; nothing would be measured"
            )
        return staged_s - entry.warmup
    if abs(staged_s - (entry.warmup + entry.duration)) > 1e-6:
        raise document.error(
            ("load", "stages"),
            f"last {staged_s:g}s but warmup + duration is {entry.warmup + entry.duration:g}s; "
            "make them equal, or leave duration out",
        )
    return entry.duration


def _with_cookies(headers: dict[str, str], entry: PlanFile) -> dict[str, str]:
    """`headers` with the file's `cookies` (and BookInfo session) appended to one Cookie header."""
    cookies = dict(entry.cookies)
    if entry.bookinfo_user:
        cookies[SESSION_COOKIE] = signed_session(entry.bookinfo_user)
    if not cookies:
        return headers
    existing_name = next((name for name in headers if name.lower() == "cookie"), "Cookie")
    pairs = [headers.pop(existing_name, "")] + [f"{name}={value}" for name, value in cookies.items()]
    headers[existing_name] = "; ".join(pair for pair in pairs if pair)
    return headers
