"""The plan of one run: what to send, how fast, for how long.

A plan is pure data (pydantic), validated at load time, so a bad value is reported once with where it
came from, never discovered by a worker mid-run. Units are in the names: seconds (`_s`), requests per
second (`rate`).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .grpc_target import is_grpc_url, parse_grpc_url

#: The wire protocol of a plan, which picks its engine: HTTP/1.1, HTTP/2 (`http2`), gRPC, or the
#: requests of a locustfile's users ("locust": Locust's HTTP clients, run by meshload's workers).
Protocol = Literal["http/1.1", "h2", "grpc", "locust"]
#: `max_connections` when a plan leaves it out: HTTP/1.1 opens connections as it needs them, up to
#: this many; HTTP/2 and gRPC multiplex every request over the connections they open, one by default
#: (as h2load and ghz do).
DEFAULT_HTTP1_MAX_CONNECTIONS = 64
DEFAULT_MULTIPLEXED_CONNECTIONS = 1
#: The most requests (tasks) per second a plan may ask for, all workers together: far above what a
#: fleet sends, low enough that a typo (1e12) is refused rather than losing the workers to it.
MAX_RATE = 1_000_000.0
#: A request timeout (and so a latency) must fit in the histograms, which track up to 2 hours
#: (`results.histogram.HIGHEST_TRACKABLE_US`, not imported: workers load plans without numpy).
MAX_TIMEOUT_S = 2 * 3600.0
#: Warm-up plus measured duration: longer runs are a series of runs (`meshload schedule`).
MAX_RUN_S = 30 * 24 * 3600.0


def check_rate(rate: float) -> float:
    """`rate` if it is a finite number of requests per second meshload can plan, else ValueError."""
    if not math.isfinite(rate):
        raise ValueError(f"{rate} is not a rate; give requests per second, e.g. 100")
    if rate > MAX_RATE:
        raise ValueError(
            f"{rate:g} requests per second is above the most a plan may ask for ({MAX_RATE:,.0f}/s, all workers "
            "together); give a lower rate"
        )
    return rate


def check_timeout_s(seconds: float) -> float:
    """A request timeout no longer than the latencies the histograms can hold, else ValueError."""
    if not seconds <= MAX_TIMEOUT_S:
        raise ValueError(
            f"{seconds:g}s is longer than the histograms' range ({MAX_TIMEOUT_S / 3600:g}h): a latency that "
            f"long could not be recorded; use {MAX_TIMEOUT_S / 3600:g}h or less"
        )
    return seconds


def check_http_url(url: str) -> str:
    """`url` if it names a host and a port that exists, else ValueError saying what to write."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"{url!r} names no host; write e.g. http://127.0.0.1:8080/path")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{url!r} has no valid port; use a port 1..65535") from None
    if port == 0:
        raise ValueError(f"{url!r} has port 0; use a port 1..65535")
    return url


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: RFC 9110 §5.6.2 `tchar`: what a header name is made of.
_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def header_problem(name: str, value: str) -> str | None:
    """What makes `name: value` unfit to send, or None.

    A CR or LF in a value would end the header line early: what follows would reach the server as
    another header, or as another request (RFC 9110 §5.5 forbids them, and NUL, in field values)."""
    if not name or not set(name) <= _TOKEN_CHARS:
        return f"header name {name!r} is not a token (letters, digits and !#$%&'*+-.^_`|~ only)"
    for char, what in (("\r", "a carriage return (CR)"), ("\n", "a line feed (LF)"), ("\0", "a NUL character")):
        if char in value:
            return f"the value of header {name!r} holds {what}, which would split the request; remove it"
    return None


def check_headers(headers: dict[str, str]) -> dict[str, str]:
    """`headers`, or ValueError naming the first one unfit to send."""
    for name, value in headers.items():
        problem = header_problem(name, value)
        if problem is not None:
            raise ValueError(problem)
    return headers


class Target(_Strict):
    """One URL of the plan; requests are spread over targets in proportion to `weight`.

    `http://` and `https://` URLs are HTTP requests; `grpc://host:port/package.Service/Method` and
    `grpcs://...` are gRPC calls, whose body is the request message as JSON and whose headers are sent
    as metadata."""

    url: str
    weight: float = Field(default=1.0, gt=0)
    method: str | None = None  # None: the plan's method (HTTP only)
    headers: dict[str, str] = {}  # added to (and overriding) the plan's headers
    body: str | None = None  # None: the plan's body

    _sendable_headers = field_validator("headers")(check_headers)

    @field_validator("url")
    @classmethod
    def _absolute_url(cls, url: str) -> str:
        if is_grpc_url(url):
            parse_grpc_url(url)  # a URL naming no method is refused here, saying what to write
            return url
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"{url!r} is not an absolute http://, https://, grpc:// or grpcs:// URL")
        return check_http_url(url)

    @property
    def is_grpc(self) -> bool:
        return is_grpc_url(self.url)


class GrpcSchema(_Strict):
    """What describes the methods of a plan's gRPC targets."""

    proto_files: tuple[str, ...] = ()  # as given, for the reports
    #: The methods' descriptors: a base64 FileDescriptorSet compiled from `proto_files`, or fetched by
    #: server reflection before the run; empty until then (no proto files: reflection).
    descriptor_set: str = ""

    @property
    def uses_reflection(self) -> bool:
        return not self.proto_files


class LocustUsers(_Strict):
    """A locustfile whose users make the requests, in meshload's workers (the Locust engine).

    The plan carries the file's text, so every worker runs the same file wherever it is. Open loop:
    the users start tasks (not requests) at the planned instants, `rate` tasks per second in total,
    `max_connections` users per worker taking them; closed loop: `concurrency` users, each with the
    locustfile's own wait time (or the plan's think time, when set). The target's URL is the users'
    `host`."""

    file: str = Field(min_length=1)  # as the user named it: a path, or a built-in's name ("bookinfo")
    #: Where it was read (absolute): a worker on the same host imports it from there when it still
    #: holds `source`, so the file's own imports of modules beside it work; any other worker runs `source`.
    path: str = ""
    source: str = Field(min_length=1)  # the file's text


class Stage(_Strict):
    """Ramp linearly from the previous rate to `rate` over `duration_s` (equal rates: hold)."""

    duration_s: float = Field(gt=0)
    rate: float = Field(ge=0)

    _plannable_rate = field_validator("rate")(check_rate)


#: How open-loop instants are drawn: evenly spaced, or a Poisson process of the same rate.
Arrival = Literal["constant", "poisson"]


class OpenLoop(_Strict):
    """Requests planned at instants drawn from an arrival process, sent whether or not earlier
    ones have answered. Latency is measured from the planned instant."""

    kind: Literal["open"] = "open"
    rate: float = Field(gt=0, description="requests per second, all workers together")
    arrival: Arrival = "constant"
    # Optional stages; when given they define the rate over time (starting from `rate`) and the
    # run lasts the sum of their durations.
    stages: tuple[Stage, ...] = ()

    _plannable_rate = field_validator("rate")(check_rate)


class ClosedLoop(_Strict):
    """`concurrency` clients, each sending its next request when the previous one has answered
    (after an optional think time). For maximum-throughput runs."""

    kind: Literal["closed"] = "closed"
    concurrency: int = Field(gt=0, description="clients, all workers together")
    think_time_s: float = Field(default=0.0, ge=0)


LoadModel = Annotated[OpenLoop | ClosedLoop, Field(discriminator="kind")]


class Plan(_Strict):
    """Everything a worker needs to generate its share of the load."""

    name: str = "run"
    targets: tuple[Target, ...] = Field(min_length=1)
    method: str = "GET"
    headers: dict[str, str] = {}
    body: str | None = None
    load: LoadModel
    duration_s: float = Field(gt=0, description="measured part of the run, after the warm-up")
    warmup_s: float = Field(default=0.0, ge=0, description="excluded from the statistics, reported")
    timeout_s: float = Field(default=5.0, gt=0, description="per request: send to complete response")
    connect_timeout_s: float = Field(default=3.0, gt=0)
    tls_verify: bool = True
    tls_ca_pem: str = ""  # PEM certificates trusted besides the system's, for https and grpcs targets
    # HTTP/1.1 open loop: the most connections one worker may open (it opens more only when none is
    # free); closed loop: ignored (each client owns one connection). HTTP/2 and gRPC: the connections
    # each worker opens, every request multiplexed over them (default 1).
    max_connections: int = Field(default=DEFAULT_HTTP1_MAX_CONNECTIONS, gt=0, description="per worker")
    #: http:// and https:// targets over HTTP/2: h2 negotiated by ALPN over TLS, h2c with prior
    #: knowledge over plain TCP.
    http2: bool = False
    #: HTTP/2: the most requests in flight on one connection (fewer if the server's
    #: SETTINGS_MAX_CONCURRENT_STREAMS says so); more wait for a free stream.
    max_streams_per_connection: int = Field(default=100, gt=0)
    grpc: GrpcSchema = GrpcSchema()
    #: A locustfile's users make the requests (None: the plan's targets, method, headers and body).
    locust: LocustUsers | None = None
    seed: int = 0  # Poisson arrivals and target choice are reproducible from it
    labels: dict[str, str] = {}

    _sendable_headers = field_validator("headers")(check_headers)

    _fits_the_histograms = field_validator("timeout_s", "connect_timeout_s")(check_timeout_s)

    @model_validator(mode="before")
    @classmethod
    def _connections_by_protocol(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("max_connections") is None:
            targets = data.get("targets") or ()
            urls = [t.url if isinstance(t, Target) else (t or {}).get("url", "") for t in targets]
            multiplexed = data.get("http2") or any(isinstance(url, str) and is_grpc_url(url) for url in urls)
            default = DEFAULT_MULTIPLEXED_CONNECTIONS if multiplexed else DEFAULT_HTTP1_MAX_CONNECTIONS
            data = {**data, "max_connections": default}
        return data

    @model_validator(mode="after")
    def _one_protocol(self) -> Plan:
        grpc_targets = sum(target.is_grpc for target in self.targets)
        if 0 < grpc_targets < len(self.targets):
            raise ValueError("the targets mix gRPC and HTTP URLs; a run speaks one protocol: split them into two runs")
        if grpc_targets and self.http2:
            raise ValueError("http2 applies to http:// and https:// targets; gRPC speaks HTTP/2 always")
        if self.grpc.proto_files and not grpc_targets:
            raise ValueError("proto files describe gRPC methods; the targets are HTTP URLs")
        if self.locust is not None:
            if grpc_targets or self.http2:
                raise ValueError(
                    "a locustfile's users speak HTTP/1.1 with Locust's clients; remove http2 or the gRPC URL"
                )
            if len(self.targets) != 1:
                raise ValueError("a locustfile's users have one host: give one URL (the host), not a list of targets")
        return self

    @model_validator(mode="after")
    def _fits_a_run(self) -> Plan:
        if self.total_s > MAX_RUN_S:
            raise ValueError(
                f"warm-up + duration is {self.total_s:g}s, above the longest run ({MAX_RUN_S / 86400:g} days); "
                "split it into shorter runs (meshload schedule)"
            )
        return self

    @model_validator(mode="after")
    def _stages_cover_duration(self) -> Plan:
        if isinstance(self.load, OpenLoop) and self.load.stages:
            staged = sum(stage.duration_s for stage in self.load.stages)
            if abs(staged - (self.warmup_s + self.duration_s)) > 1e-6:
                raise ValueError(
                    f"the stages last {staged:g}s but warm-up + duration is "
                    f"{self.warmup_s + self.duration_s:g}s; make them equal"
                )
        return self

    @property
    def protocol(self) -> Protocol:
        """The wire protocol: "locust" for a locustfile's users, "grpc" for grpc(s):// targets, else
        "h2" or "http/1.1" by `http2`."""
        if self.locust is not None:
            return "locust"
        if self.targets[0].is_grpc:
            return "grpc"
        return "h2" if self.http2 else "http/1.1"

    @property
    def multiplexed(self) -> bool:
        """Whether every request of a worker shares its `max_connections` connections (HTTP/2, gRPC)."""
        return self.protocol in ("h2", "grpc")

    @property
    def total_s(self) -> float:
        """Warm-up plus measured duration: how long workers send."""
        return self.warmup_s + self.duration_s
