"""The plan of a `meshload run` from its command line: built (and checked) before anything starts, and
described in one line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from ..errors import UsageError

if TYPE_CHECKING:
    from ..scenarios.plan import Plan

# The command line's words for the arrivals (typer checks them and lists them in --help); the plan's
# own (`OpenLoop.arrival`), which mypy holds them to.
Arrival = Literal["constant", "poisson"]


def build_plan(
    *,
    url: str | None,
    scenario: str | None,
    rate: float | None,
    concurrency: int | None,
    duration: str | None,
    warmup: str | None,
    connections: int | None,
    arrival: Arrival | None,
    method: str | None,
    headers: list[str],
    body: str | None,
    timeout: str | None,
    labels: list[str],
    base_url: str | None = None,
    http2: bool | None = None,
    streams: int | None = None,
    proto: list[str] | None = None,
    import_paths: list[str] | None = None,
    tls_verify: bool | None = None,
    ca_file: str | None = None,
    locustfile: str | None = None,
) -> Plan:
    """The run's plan from a URL and options, or from a scenario file with the options as overrides
    (a URL given with a scenario is the base of the scenario's relative paths)."""
    from ..scenarios.durations import parse_duration_s
    from ..scenarios.options import plan_from_options

    def seconds(text: str | None, option: str) -> float | None:
        return parse_duration_s(text, option=option) if text is not None else None

    return plan_from_options(
        url,
        scenario,
        rate=rate,
        concurrency=concurrency,
        duration_s=seconds(duration, "--duration"),
        warmup_s=seconds(warmup, "--warmup"),
        arrival=arrival,
        connections=connections,
        method=method,
        headers=headers,
        body=body,
        timeout_s=seconds(timeout, "--timeout"),
        labels=labels,
        base_url=base_url,
        http2=http2,
        streams=streams,
        proto=proto,
        import_paths=import_paths,
        tls_verify=tls_verify,
        ca_file=ca_file,
        locustfile=locustfile,
    )


def check_locustfile(plan: Plan) -> None:
    """Load the plan's locustfile the way a worker does, before anything starts: a file that does not
    import, or holds no User class, is one UsageError line (what, where, what to do)."""
    from ..errors import PlanError
    from ..worker.engine_process import check_before_load

    try:
        check_before_load(plan)
    except PlanError as exc:
        raise UsageError(f"--locustfile: {exc}") from exc


def describe_plan(plan: Plan) -> str:
    from ..scenarios.plan import OpenLoop

    load = plan.load
    unit, clients = ("tasks/s", "users") if plan.locust is not None else ("req/s", "clients")
    if isinstance(load, OpenLoop):
        what = f"{load.rate:g} {unit} {load.arrival}" + (f", {len(load.stages)} stages" if load.stages else "")
    else:
        what = f"{load.concurrency} {clients}"
    warm = f" after {plan.warmup_s:g}s warm-up" if plan.warmup_s else ""
    if plan.locust is not None:
        users = f", {plan.max_connections} users/worker" if isinstance(load, OpenLoop) else ""
        warm += f" from the users of {plan.locust.file}{users}"
    elif plan.multiplexed:
        warm += f" over {'gRPC' if plan.protocol == 'grpc' else 'HTTP/2'}, {plan.max_connections} connection(s)/worker"
    return f"{what} for {plan.duration_s:g}s{warm} to {plan.targets[0].url}" + (
        f" (+{len(plan.targets) - 1} more targets)" if len(plan.targets) > 1 else ""
    )
