"""The plan of one run: what to send, how fast, for how long.

A plan is pure data (pydantic), validated at load time, so a bad value is reported once with where it
came from, never discovered by a worker mid-run. Units are in the names: seconds (`_s`), requests per
second (`rate`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


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
    """One URL of the plan; requests are spread over targets in proportion to `weight`."""

    url: str
    weight: float = Field(default=1.0, gt=0)
    method: str | None = None  # None: the plan's method
    headers: dict[str, str] = {}  # added to (and overriding) the plan's headers
    body: str | None = None  # None: the plan's body

    _sendable_headers = field_validator("headers")(check_headers)

    @field_validator("url")
    @classmethod
    def _absolute_http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"{url!r} is not an absolute http:// or https:// URL")
        return url


class Stage(_Strict):
    """Ramp linearly from the previous rate to `rate` over `duration_s` (equal rates: hold)."""

    duration_s: float = Field(gt=0)
    rate: float = Field(ge=0)


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
    # Open loop: the most connections one worker may open (it opens more only when none is free).
    # Closed loop: ignored (each client owns one connection).
    max_connections: int = Field(default=64, gt=0, description="per worker")
    seed: int = 0  # Poisson arrivals and target choice are reproducible from it
    labels: dict[str, str] = {}

    _sendable_headers = field_validator("headers")(check_headers)

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
    def total_s(self) -> float:
        """Warm-up plus measured duration: how long workers send."""
        return self.warmup_s + self.duration_s
