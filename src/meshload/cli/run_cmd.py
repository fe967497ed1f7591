"""`meshload run`: one headless run against a URL or a scenario file, with SMP reports at the end.

Exit code: 0 when the run is valid (or `--strict` was not given), 1 when it is invalid or degraded and
`--strict` was given (or the run could not be carried out), 2 for a usage error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import UsageError
from . import terminal
from .history_hook import HistoryOption, StoreOption, record_run

ENV_PREFIX = "MESHLOAD_"
DEFAULT_DURATION = "30s"
DEFAULT_RUNS_DIR = Path("runs")


def _option(*names: str, env: str, help: str) -> Any:
    """A typer option whose environment variable is MESHLOAD_<env>, shown in --help."""
    return typer.Option(*names, envvar=ENV_PREFIX + env, show_envvar=True, help=help)


def run(
    url: Annotated[str | None, typer.Argument(help="Target URL (or give --scenario).", show_default=False)] = None,
    scenario: Annotated[
        str | None, _option("--scenario", "-s", env="SCENARIO", help="Plan file (YAML/JSON) or built-in scenario name.")
    ] = None,
    rate: Annotated[
        float | None, _option("--rate", "-r", env="RATE", help="Open loop: requests per second, all workers together.")
    ] = None,
    concurrency: Annotated[
        int | None,
        _option(
            "--concurrency", "-c", env="CONCURRENCY", help="Closed loop: concurrent clients, all workers together."
        ),
    ] = None,
    duration: Annotated[
        str | None,
        _option(
            "--duration",
            "-d",
            env="DURATION",
            help=f"Measured duration, e.g. 30s, 5m, 1h (default {DEFAULT_DURATION} for a URL).",
        ),
    ] = None,
    warmup: Annotated[
        str | None,
        _option("--warmup", env="WARMUP", help="Warm-up before the measured part (excluded from statistics), e.g. 5s."),
    ] = None,
    workers: Annotated[
        int,
        _option(
            "--workers",
            "-w",
            env="WORKERS",
            help="Workers sharing the load (local processes, or idle fleet workers on --redis).",
        ),
    ] = 1,
    connections: Annotated[
        int | None, _option("--connections", env="CONNECTIONS", help="Open loop: most connections per worker.")
    ] = None,
    arrival: Annotated[
        str | None, _option("--arrival", env="ARRIVAL", help="Open-loop arrivals: constant or poisson.")
    ] = None,
    method: Annotated[str | None, _option("--method", "-m", env="METHOD", help="HTTP method (default GET).")] = None,
    header: Annotated[
        list[str] | None, _option("--header", "-H", env="HEADERS", help="Request header 'Name: value' (repeatable).")
    ] = None,
    body: Annotated[str | None, _option("--body", env="BODY", help="Request body.")] = None,
    timeout: Annotated[
        str | None, _option("--timeout", env="TIMEOUT", help="Per-request timeout, e.g. 5s, 500ms.")
    ] = None,
    label: Annotated[
        list[str] | None, _option("--label", "-l", env="LABELS", help="Label k=v for the report (repeatable).")
    ] = None,
    redis_url: Annotated[
        str | None,
        _option(
            "--redis",
            env="REDIS",
            help="Redis URL (redis://, rediss://, unix://); default: a private redis-server for this run.",
        ),
    ] = None,
    out: Annotated[
        Path | None, _option("--out", "-o", env="OUT", help="Output folder (default: a new folder under runs/).")
    ] = None,
    strict: Annotated[
        bool, _option("--strict", env="STRICT", help="Exit 1 when the run is invalid or degraded.")
    ] = False,
    on_worker_loss: Annotated[
        str,
        _option(
            "--on-worker-loss",
            env="ON_WORKER_LOSS",
            help="When a worker is lost: continue (run marked degraded) or abort.",
        ),
    ] = "continue",
    metrics_port: Annotated[
        int | None,
        _option(
            "--metrics-port",
            env="METRICS_PORT",
            help="Serve live figures for Prometheus on this port (on --metrics-address).",
        ),
    ] = None,
    metrics_address: Annotated[
        str,
        _option(
            "--metrics-address",
            env="METRICS_ADDRESS",
            help="Address of the --metrics-port endpoint (0.0.0.0: every interface, e.g. in a pod).",
        ),
    ] = "127.0.0.1",
    live: Annotated[bool, _option("--live/--no-live", env="LIVE", help="Show live progress on stderr.")] = True,
    placement: Annotated[
        str,
        _option(
            "--placement",
            env="PLACEMENT",
            help="Workers: auto (idle fleet workers if any, else local processes), local, or fleet.",
        ),
    ] = "auto",
    testbed: Annotated[
        str | None,
        _option(
            "--testbed",
            env="TESTBED",
            help="Run against the local testbed with this function in force (started if needed; its CPU and memory are sampled). Without a URL or scenario: the bookinfo-productpage scenario.",
        ),
    ] = None,
    testbed_set: Annotated[
        list[str] | None,
        _option(
            "--testbed-set", env="TESTBED_SET", help="A parameter of the --testbed function, key=value (repeatable)."
        ),
    ] = None,
    store: StoreOption = None,
    history: HistoryOption = True,
) -> None:
    """Send load to a URL or a scenario's targets, then write smp.json, fortio.json, histograms.hlog
    and report.html, and record the run in the history."""
    from ..coordinator.run import RunOptions, execute_run, new_run_id

    mesh, base_url = None, None
    labels = list(label or [])
    if testbed is not None:
        mesh, base_url = _testbed_in_force(testbed, testbed_set or [])
        scenario = scenario if scenario is not None or url is not None else "bookinfo-productpage"
        labels.insert(0, f"function={testbed}")  # a --label given by the user overrides it
    plan = build_plan(
        url=url,
        scenario=scenario,
        rate=rate,
        concurrency=concurrency,
        duration=duration,
        warmup=warmup,
        connections=connections,
        arrival=arrival,
        method=method,
        headers=header or [],
        body=body,
        timeout=timeout,
        labels=labels,
        base_url=base_url,
    )
    _check_choice("--on-worker-loss", on_worker_loss, ("continue", "abort"))
    _check_choice("--placement", placement, ("auto", "local", "fleet"))
    if workers < 1:
        raise UsageError(f"--workers: {workers} is not a worker count; use 1 or more")
    if metrics_port is not None and not 0 <= metrics_port <= 65535:
        raise UsageError(f"--metrics-port: {metrics_port} is not a port; use 0..65535")
    run_id = new_run_id()
    out_dir = out if out is not None else DEFAULT_RUNS_DIR / run_id
    options = RunOptions(
        workers=workers,
        redis_url=redis_url,
        out_dir=out_dir,
        on_worker_loss=on_worker_loss,  # type: ignore[arg-type]
        metrics_port=metrics_port,
        metrics_address=metrics_address,
        live=live,
        strict=strict,
        placement=placement,
        run_id=run_id,  # type: ignore[arg-type]
        mesh=mesh,
    )
    terminal.info(f"run {run_id}: {describe_plan(plan)}, {workers} worker(s)")
    result = execute_run(plan, options)
    terminal.result(summary_table(result))
    for reason in result.validity:
        terminal.warning(reason)
    if not result.valid:
        terminal.warning("the run is INVALID: its figures cannot be trusted as a measurement (see above)")
    elif result.degraded:
        terminal.warning("the run is DEGRADED: it measured less load or fewer workers than planned")
    terminal.info(f"results in {out_dir}")
    record_run(result, out_dir, store=store, enabled=history)
    code = exit_code_for(result, strict=strict)
    if code:
        raise typer.Exit(code)


def exit_code_for(result: Any, *, strict: bool) -> int:
    """0 for a valid run; 1 for an invalid or degraded one when `--strict` was given (else 0)."""
    return 1 if strict and (not result.valid or result.degraded) else 0


def _testbed_in_force(function: str, settings: list[str]) -> tuple[Any, str]:
    """Start the local testbed if needed and put `function` in force; its mesh adapter and ingress."""
    from ..coordinator.mesh.local import LocalTestbedMesh
    from .testbed_cmd import settings_from_pairs

    mesh = LocalTestbedMesh()
    if function not in mesh.functions():
        raise UsageError(f"--testbed: {function!r} is not a testbed function; use one of {', '.join(mesh.functions())}")
    params = settings_from_pairs(settings)
    terminal.info(f"testbed: putting {function} in force")
    mesh.apply(function, params)
    return mesh, mesh.ingress_url


def _check_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UsageError(f"{option}: {value!r} is not one of {', '.join(choices)}")


def build_plan(
    *,
    url: str | None,
    scenario: str | None,
    rate: float | None,
    concurrency: int | None,
    duration: str | None,
    warmup: str | None,
    connections: int | None,
    arrival: str | None,
    method: str | None,
    headers: list[str],
    body: str | None,
    timeout: str | None,
    labels: list[str],
    base_url: str | None = None,
) -> Any:
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
    )


def describe_plan(plan: Any) -> str:
    from ..scenarios.plan import OpenLoop

    load = plan.load
    if isinstance(load, OpenLoop):
        what = f"{load.rate:g} req/s {load.arrival}" + (f", {len(load.stages)} stages" if load.stages else "")
    else:
        what = f"{load.concurrency} clients"
    warm = f" after {plan.warmup_s:g}s warm-up" if plan.warmup_s else ""
    return f"{what} for {plan.duration_s:g}s{warm} to {plan.targets[0].url}" + (
        f" (+{len(plan.targets) - 1} more targets)" if len(plan.targets) > 1 else ""
    )


def summary_table(result: Any) -> str:
    """A short plain-text summary: totals, latency percentiles, per-worker lines."""
    percentiles = result.corrected.percentiles_ms()
    uncorrected = result.uncorrected.percentiles_ms()
    lines = [
        f"requests  {result.completed:,} completed, {result.sent:,} sent, {result.error_count:,} errors"
        + (f", {result.missed:,} never sent" if result.missed else ""),
        f"rate      {result.actual_rps:,.1f} req/s over {result.measured_s:.1f}s",
        "latency   " + "  ".join(f"p{key} {value:.2f}" for key, value in percentiles.items()) + "  ms (corrected)",
        "          " + "  ".join(f"p{key} {value:.2f}" for key, value in uncorrected.items()) + "  ms (uncorrected)",
    ]
    if result.status_codes:
        lines.append("status    " + "  ".join(f"{code}: {count:,}" for code, count in result.status_codes.items()))
    if result.errors:
        lines.append("errors    " + "  ".join(f"{kind}: {count:,}" for kind, count in result.errors.items()))
    for worker in result.workers:
        lost = "  LOST" if worker.lost else ""
        lines.append(
            f"worker    {worker.id}: {worker.requests:,} requests, cpu {worker.cpu_seconds:.2f}s, "
            f"clock offset {worker.clock_offset_ms:+.2f} ms{lost}"
        )
    lines.append(f"valid     {'yes' if result.valid else 'NO'}" + ("  (degraded)" if result.degraded else ""))
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
