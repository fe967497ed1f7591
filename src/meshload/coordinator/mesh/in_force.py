"""Waiting until an applied function is in force: the mesh's own status where it writes one, else a
probe request that shows the behaviour.

Status is read where the writer is known to report it:

    Consul config entries   status.conditions Synced=True (consul-k8s syncs them into Consul)
    Gateway API routes      status.parents[].conditions Accepted=True (the mesh accepted the route)
    Deployments             the rollout finished (updated and available replicas = replicas)
    anything else           a Reconciled/Accepted/Ready/Synced condition when present (Istio writes
                            Reconciled only with PILOT_ENABLE_STATUS); without one the object has no
                            status to read, and only a probe can confirm it

A probe is any callable returning a `ProbeOutcome`; `HttpProbe` sends requests and checks the answer.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from ...errors import NotInForce
from .manifests import Object

DEFAULT_TIMEOUT_S = 120.0
DEFAULT_POLL_S = 1.0

# API groups whose objects always get a status from a controller, so "no status yet" means "not yet".
_STATUS_WRITERS = ("consul.hashicorp.com", "gateway.networking.k8s.io", "apps")
_CONDITION_TYPES = ("Synced", "Reconciled", "Accepted", "Ready")


class Readiness(StrEnum):
    READY = "ready"
    PENDING = "pending"
    NO_STATUS = "no status"  # nothing in the object says whether it is in force


@dataclass(frozen=True)
class ObjectState:
    what: str  # "VirtualService bookinfo/reviews"
    readiness: Readiness
    detail: str = ""


def object_state(obj: Object) -> ObjectState:
    """What `obj`'s status says about being in force."""
    metadata = obj.get("metadata", {})
    what = f"{obj.get('kind', '?')} {metadata.get('namespace', '')}/{metadata.get('name', '?')}"
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    status = obj.get("status") or {}
    if obj.get("kind") == "Deployment" and group == "apps":
        return _rollout(what, obj, status)
    if "parents" in status or (group == "gateway.networking.k8s.io" and obj.get("kind", "").endswith("Route")):
        return _route(what, status.get("parents") or [])
    condition = next((c for c in status.get("conditions") or [] if c.get("type") in _CONDITION_TYPES), None)
    if condition is not None:
        return _condition(what, condition, metadata.get("generation"))
    if group in _STATUS_WRITERS:
        return ObjectState(what, Readiness.PENDING, "no status from the mesh yet")
    return ObjectState(what, Readiness.NO_STATUS)


def _condition(what: str, condition: dict[str, Any], generation: int | None) -> ObjectState:
    observed = condition.get("observedGeneration")
    if generation is not None and observed is not None and observed < generation:
        return ObjectState(what, Readiness.PENDING, f"{condition['type']} is for generation {observed} of {generation}")
    if str(condition.get("status")) == "True":
        return ObjectState(what, Readiness.READY, str(condition["type"]))
    return ObjectState(what, Readiness.PENDING, _condition_text(condition))


def _rollout(what: str, obj: Object, status: dict[str, Any]) -> ObjectState:
    wanted = int(obj.get("spec", {}).get("replicas", 1))
    generation = obj.get("metadata", {}).get("generation", 0)
    observed = status.get("observedGeneration", 0)
    updated, available = int(status.get("updatedReplicas", 0)), int(status.get("availableReplicas", 0))
    if observed >= generation and updated >= wanted and available >= wanted:
        return ObjectState(what, Readiness.READY, "rolled out")
    return ObjectState(what, Readiness.PENDING, f"rolling out: {updated} of {wanted} updated, {available} available")


def _route(what: str, parents: list[dict[str, Any]]) -> ObjectState:
    if not parents:
        return ObjectState(what, Readiness.PENDING, "no mesh controller has accepted the route yet")
    for parent in parents:
        for condition in parent.get("conditions") or []:
            if condition.get("type") in ("Accepted", "ResolvedRefs") and str(condition.get("status")) != "True":
                return ObjectState(what, Readiness.PENDING, _condition_text(condition))
    return ObjectState(what, Readiness.READY, "Accepted")


def _condition_text(condition: dict[str, Any]) -> str:
    parts = [f"{condition.get('type')}={condition.get('status')}"]
    for key in ("reason", "message"):
        if condition.get(key):
            parts.append(str(condition[key]))
    return ": ".join(parts)


@dataclass(frozen=True)
class ProbeOutcome:
    ok: bool
    detail: str


class Probe(Protocol):
    """Shows the function's behaviour: `ok` once the function is visibly in force."""

    def __call__(self) -> ProbeOutcome: ...


@dataclass(frozen=True)
class HttpProbe:
    """Send up to `requests` GETs to `url`; in force once one answer has the expected status, header
    and body text (each check only when given). For a rate limit: `requests` above the limit and
    `expect_status=429`; for an abort: `expect_status=500`."""

    url: str
    expect_status: int | None = None
    expect_header: tuple[str, str] | None = None
    expect_body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    requests: int = 1
    timeout_s: float = 5.0

    def __call__(self) -> ProbeOutcome:
        last = "no answer"
        for _ in range(max(self.requests, 1)):
            try:
                status, headers, body = self._get()
            except (urllib.error.URLError, OSError) as exc:
                last = f"GET {self.url} failed: {getattr(exc, 'reason', exc)}"
                continue
            missing = self._mismatch(status, headers, body)
            if not missing:
                return ProbeOutcome(True, f"GET {self.url} answered {status}")
            last = f"GET {self.url}: {missing}"
        return ProbeOutcome(False, last)

    def _get(self) -> tuple[int, dict[str, str], str]:
        request = urllib.request.Request(self.url, headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return (
                    response.status,
                    {k.lower(): v for k, v in response.headers.items()},
                    response.read().decode("utf-8", "replace"),
                )
        except urllib.error.HTTPError as error:  # a 4xx/5xx answer is an answer
            body = error.read().decode("utf-8", "replace")
            return error.code, {k.lower(): v for k, v in error.headers.items()}, body

    def _mismatch(self, status: int, headers: dict[str, str], body: str) -> str:
        if self.expect_status is not None and status != self.expect_status:
            return f"status {status}, expected {self.expect_status}"
        if self.expect_header is not None:
            name, value = self.expect_header
            if headers.get(name.lower()) != value:
                return f"header {name}: {headers.get(name.lower())!r}, expected {value!r}"
        if self.expect_body is not None and self.expect_body not in body:
            return f"body lacks {self.expect_body!r}"
        return ""


@dataclass(frozen=True)
class InForce:
    """How an applied function was confirmed to be in force."""

    function: str
    confirmed: tuple[str, ...]  # objects whose status says so, and the probe's answer
    unconfirmed: tuple[str, ...]  # objects without any status, when no probe was given
    waited_s: float

    @property
    def fully_confirmed(self) -> bool:
        return not self.unconfirmed


def wait_until_in_force(
    function: str,
    read_states: Callable[[], Sequence[ObjectState]],
    *,
    probe: Probe | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    poll_s: float = DEFAULT_POLL_S,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> InForce:
    """Poll the objects' status (and then the probe) until all say "in force"; NotInForce after
    `timeout_s` with what was still missing."""
    started = clock()
    while True:
        states = list(read_states())
        pending = [state for state in states if state.readiness is Readiness.PENDING]
        outcome = probe() if probe is not None and not pending else None
        if not pending and (outcome is None or outcome.ok):
            confirmed = tuple(state.what for state in states if state.readiness is Readiness.READY)
            if outcome is not None:
                confirmed += (f"probe: {outcome.detail}",)
            unconfirmed = (
                ()
                if outcome is not None
                else tuple(state.what for state in states if state.readiness is Readiness.NO_STATUS)
            )
            return InForce(function, confirmed, unconfirmed, clock() - started)
        if clock() - started >= timeout_s:
            reasons = [f"{state.what}: {state.detail}" for state in pending[:3]]
            if len(pending) > 3:
                reasons.append(f"and {len(pending) - 3} more")
            if outcome is not None:
                reasons.append(f"probe: {outcome.detail}")
            raise NotInForce(f"{function} not in force after {timeout_s:g} s: {'; '.join(reasons)}")
        sleep(poll_s)
