"""Which engine runs a plan (after uvicorn's `loops/auto.py` and `protocols/http/auto.py`).

Adding an engine is one module (a class keeping the `base.Engine` contract) and one line in
`ENGINES`. A plan is run by the engine it names, else by the first engine in `ENGINES` that speaks
its protocol (`Plan.protocol`: HTTP/1.1, HTTP/2, gRPC or a locustfile's users) and the scheme of every one of its
targets. Engine modules are imported only when picked, so a process
never loads the event loop of an engine it does not run (gevent and uvloop never share one): the
registration line states the event loop, and `event_loop_for` answers without importing anything.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from urllib.parse import urlsplit

from ...errors import PlanError
from ...scenarios.plan import Plan, Protocol
from .base import Engine, EventLoop


@dataclass(frozen=True)
class Registration:
    """One engine: its name, where it lives ("module:Class"), its event loop, the protocol and URL
    schemes it speaks."""

    name: str
    implementation: str
    event_loop: EventLoop
    schemes: tuple[str, ...]
    protocol: Protocol = "http/1.1"


#: Every engine, in order of preference for a protocol and scheme. One line each.
ENGINES: tuple[Registration, ...] = (
    Registration("uvloop-http", "meshload.worker.engines.uvloop_http:UvloopHttpEngine", "asyncio", ("http", "https")),
    Registration("h2", "meshload.worker.engines.h2_engine:H2Engine", "asyncio", ("http", "https"), "h2"),
    Registration("grpc", "meshload.worker.engines.grpc_engine:GrpcEngine", "asyncio", ("grpc", "grpcs"), "grpc"),
    Registration("locust", "meshload.worker.engines.locust_engine:LocustEngine", "gevent", ("http", "https"), "locust"),
)


def registration_for(plan: Plan, name: str | None = None) -> Registration:
    """The engine for `plan`: the one called `name`, else the first that speaks all its schemes."""
    if name is not None:
        for registration in ENGINES:
            if registration.name == name:
                return registration
        raise PlanError(f"engine {name!r} does not exist; use one of {', '.join(r.name for r in ENGINES)}")
    schemes = {urlsplit(target.url).scheme for target in plan.targets}
    for registration in ENGINES:
        if schemes <= set(registration.schemes) and registration.protocol == plan.protocol:
            return registration
    spoken = sorted({scheme for registration in ENGINES for scheme in registration.schemes})
    raise PlanError(
        f"no engine sends {', '.join(sorted(schemes))} requests together; use targets of one of: {', '.join(spoken)}"
    )


def event_loop_for(plan: Plan, name: str | None = None) -> EventLoop:
    """The event loop a worker process needs for `plan` (nothing is imported)."""
    return registration_for(plan, name).event_loop


def load_engine(registration: Registration) -> Engine:
    """Import and build the registered engine; it must state the registered event loop."""
    module_name, _, class_name = registration.implementation.partition(":")
    engine_class = getattr(importlib.import_module(module_name), class_name)
    engine: Engine = engine_class()
    if engine.event_loop != registration.event_loop:
        raise TypeError(
            f"engine {registration.name} runs on {engine.event_loop} but is registered for {registration.event_loop}"
        )
    return engine


def pick_engine(plan: Plan, name: str | None = None) -> Engine:
    """The engine that runs `plan`, ready to `run(job, stop)`."""
    return load_engine(registration_for(plan, name))
