"""`meshload run`: one headless run against a URL or a scenario file, with SMP reports at the end.

Exit code: 0 when the run is valid (or `--strict` was not given), 1 when it is invalid or degraded and
`--strict` was given (or the run could not be carried out), 2 for a usage error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from .. import terminal
from ..errors import UsageError
from .history_hook import HistoryOption, StoreOption, record_run
from .k8s_options import (
    K8sDeploymentOption,
    K8sNamespaceOption,
    K8sSelectorOption,
    K8sWaitOption,
    KubeconfigOption,
    ResultsTtlOption,
    kubernetes_fleet,
    results_ttl_s,
    worker_placement,
)
from .mesh_cmd import MeshName
from .options import DEFAULT_PROMETHEUS_STEP_S, PrometheusOption, PrometheusStepOption, option, prometheus_source

if TYPE_CHECKING:  # imported when the command runs, so `meshload --help` stays fast
    from ..coordinator.mesh import InForce, KubernetesMesh
    from ..coordinator.mesh.local import LocalTestbedMesh
    from ..coordinator.run import RunOptions
    from ..results.run_result import RunResult
    from ..scenarios.plan import Plan

DEFAULT_RUNS_DIR = Path("runs")

# The command line's words for the choices (typer checks them and lists them in --help); they are
# the coordinator's and the plan's own (`RunOptions`, `OpenLoop.arrival`), which mypy holds them to.
Arrival = Literal["constant", "poisson"]
OnWorkerLoss = Literal["continue", "abort"]
Placement = Literal["auto", "local", "fleet", "k8s"]


def run(
    url: Annotated[str | None, typer.Argument(help="Target URL (or give --scenario).", show_default=False)] = None,
    scenario: Annotated[
        str | None, option("--scenario", "-s", env="SCENARIO", help="Plan file (YAML/JSON) or built-in scenario name.")
    ] = None,
    rate: Annotated[
        float | None,
        option(
            "--rate",
            "-r",
            env="RATE",
            help="Open loop: requests per second, all workers together (with --locustfile: tasks per second).",
        ),
    ] = None,
    locustfile: Annotated[
        str | None,
        option(
            "--locustfile",
            env="LOCUSTFILE",
            help="A locustfile (or built-in: bookinfo) whose users make the requests, in meshload's workers; "
            "the URL is their host. --rate: tasks per second, taken by --connections users per worker.",
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        option(
            "--concurrency",
            "-c",
            env="CONCURRENCY",
            help="Closed loop: concurrent clients (with --locustfile: users), all workers together.",
        ),
    ] = None,
    duration: Annotated[
        str | None,
        option(
            "--duration",
            "-d",
            env="DURATION",
            help="Measured duration, e.g. 30s, 5m, 1h (default: the scenario's; 30s for a URL).",
        ),
    ] = None,
    warmup: Annotated[
        str | None,
        option("--warmup", env="WARMUP", help="Warm-up before the measured part (excluded from statistics), e.g. 5s."),
    ] = None,
    workers: Annotated[
        str,
        option(
            "--workers",
            "-w",
            env="WORKERS",
            help="Workers sharing the load: N (local processes, or idle fleet workers on --redis), or k8s:N "
            "(the Kubernetes fleet's Deployment scaled to N for the run, then back; see --k8s-deployment).",
        ),
    ] = "1",
    connections: Annotated[
        int | None,
        option(
            "--connections",
            env="CONNECTIONS",
            help="HTTP/1.1 open loop: most connections per worker (64). HTTP/2 and gRPC: connections (channels) "
            "per worker, every request multiplexed over them (1). --locustfile with --rate: users per worker (64).",
        ),
    ] = None,
    http2: Annotated[
        bool | None,
        option(
            "--http2/--http1",
            env="HTTP2",
            help="http(s) targets over HTTP/2: h2 by ALPN for https, h2c (prior knowledge) for http.",
            show_default=False,
        ),
    ] = None,
    streams: Annotated[
        int | None,
        option("--streams", env="STREAMS", help="HTTP/2: most requests in flight per connection (100)."),
    ] = None,
    proto: Annotated[
        list[str] | None,
        option("--proto", env="PROTO", help="gRPC: proto file describing the method (repeatable); else reflection."),
    ] = None,
    import_path: Annotated[
        list[str] | None,
        option("--import-path", env="IMPORT_PATHS", help="gRPC: folder searched for the proto files' imports."),
    ] = None,
    insecure: Annotated[
        bool | None,
        option(
            "--insecure/--verify",
            env="INSECURE",
            help="https/grpcs: accept any server certificate (self-signed test meshes).",
            show_default=False,
        ),
    ] = None,
    ca_file: Annotated[
        str | None, option("--ca-file", env="CA_FILE", help="https/grpcs: PEM file of CA certificates to trust too.")
    ] = None,
    arrival: Annotated[
        Arrival | None, option("--arrival", env="ARRIVAL", help="Open-loop arrivals (default constant).")
    ] = None,
    method: Annotated[str | None, option("--method", "-m", env="METHOD", help="HTTP method (default GET).")] = None,
    header: Annotated[
        list[str] | None, option("--header", "-H", env="HEADERS", help="Request header 'Name: value' (repeatable).")
    ] = None,
    body: Annotated[
        str | None,
        option("--body", "--data", env="BODY", help="Request body; gRPC: the request message as JSON."),
    ] = None,
    timeout: Annotated[
        str | None, option("--timeout", env="TIMEOUT", help="Per-request timeout, e.g. 5s, 500ms.")
    ] = None,
    label: Annotated[
        list[str] | None, option("--label", "-l", env="LABELS", help="Label k=v for the report (repeatable).")
    ] = None,
    redis_url: Annotated[
        str | None,
        option(
            "--redis",
            env="REDIS",
            help="Redis URL (redis://, rediss://, unix://); default: a private redis-server for this run.",
        ),
    ] = None,
    out: Annotated[
        Path | None, option("--out", "-o", env="OUT", help="Output folder (default: a new folder under runs/).")
    ] = None,
    strict: Annotated[
        bool, option("--strict", env="STRICT", help="Exit 1 when the run is invalid or degraded.")
    ] = False,
    on_worker_loss: Annotated[
        OnWorkerLoss,
        option(
            "--on-worker-loss",
            env="ON_WORKER_LOSS",
            help="When a worker is lost: continue (the run is marked degraded) or abort.",
        ),
    ] = "continue",
    metrics_port: Annotated[
        int | None,
        option(
            "--metrics-port",
            env="METRICS_PORT",
            help="Serve live figures for Prometheus on this port (on --metrics-address).",
        ),
    ] = None,
    metrics_address: Annotated[
        str,
        option(
            "--metrics-address",
            env="METRICS_ADDRESS",
            help="Address of the --metrics-port endpoint (0.0.0.0: every interface, e.g. in a pod).",
        ),
    ] = "127.0.0.1",
    live: Annotated[bool, option("--live/--no-live", env="LIVE", help="Show live progress on stderr.")] = True,
    placement: Annotated[
        Placement,
        option(
            "--placement",
            env="PLACEMENT",
            help="Workers: auto (idle fleet workers if any, else local processes), local, fleet, or k8s "
            "(the same as --workers k8s:N).",
        ),
    ] = "auto",
    k8s_deployment: K8sDeploymentOption = None,
    k8s_namespace: K8sNamespaceOption = None,
    k8s_selector: K8sSelectorOption = None,
    k8s_wait: K8sWaitOption = None,
    kubeconfig: KubeconfigOption = None,
    results_ttl: ResultsTtlOption = None,
    testbed: Annotated[
        str | None,
        option(
            "--testbed",
            env="TESTBED",
            help="Run against the local testbed with this function in force (started if needed; its CPU and "
            "memory are sampled). Without a URL or scenario: the bookinfo-productpage scenario.",
        ),
    ] = None,
    testbed_set: Annotated[
        list[str] | None,
        option(
            "--testbed-set", env="TESTBED_SET", help="A parameter of the --testbed function, key=value (repeatable)."
        ),
    ] = None,
    mesh: Annotated[
        MeshName | None,
        option(
            "--mesh",
            env="MESH",
            help="Run against BookInfo on this mesh in a Kubernetes cluster: --mesh-function is applied through "
            "the Kubernetes API and waited for before the run, and removed after it (needs --ingress). "
            "Without a URL or scenario: the bookinfo-productpage scenario.",
        ),
    ] = None,
    mesh_function: Annotated[
        str,
        option("--mesh-function", env="MESH_FUNCTION", help="--mesh: the function (see `meshload mesh functions`)."),
    ] = "sidecar",
    mesh_set: Annotated[
        list[str] | None,
        option("--mesh-set", env="MESH_SETTINGS", help="--mesh: a function parameter, key=value (repeatable)."),
    ] = None,
    namespace: Annotated[str, option("--namespace", env="MESH_NAMESPACE", help="--mesh: BookInfo's namespace.")] = (
        "bookinfo"
    ),
    ingress: Annotated[
        str | None,
        option(
            "--ingress",
            env="MESH_INGRESS",
            help="--mesh: the URL of the mesh's ingress gateway in front of BookInfo.",
            show_default=False,
        ),
    ] = None,
    prometheus: PrometheusOption = None,
    prometheus_step: PrometheusStepOption = DEFAULT_PROMETHEUS_STEP_S,
    store: StoreOption = None,
    history: HistoryOption = True,
) -> None:
    """Send load to a URL or a scenario's targets, then write smp.json, fortio.json, histograms.hlog
    and report.html, and record the run in the history."""
    from ..coordinator.run import RunOptions, execute_run, new_run_id
    from ..scenarios.files import calls_grpc_base

    run_id = new_run_id()
    out_dir = out if out is not None else DEFAULT_RUNS_DIR / run_id
    # Checked before anything starts (the testbed included).
    count, placement = worker_placement(workers, placement)
    options = RunOptions(
        workers=count.count,
        redis_url=redis_url,
        out_dir=out_dir,
        on_worker_loss=on_worker_loss,
        metrics_port=metrics_port,
        metrics_address=metrics_address,
        live=live,
        placement=placement,
        run_id=run_id,
        kubernetes=(
            kubernetes_fleet(k8s_deployment, k8s_namespace, k8s_selector, k8s_wait, kubeconfig)
            if count.kubernetes
            else None
        ),
        results_ttl_s=results_ttl_s(results_ttl),
        prometheus=prometheus_source(prometheus, prometheus_step),
    )
    base_url = None
    labels = list(label or [])
    cluster_mesh: ClusterRun | None = None
    if mesh is not None:
        if testbed is not None:
            raise UsageError("--mesh and --testbed name two meshes; choose one")
        cluster_mesh = _cluster_mesh(mesh, mesh_function, mesh_set or [], namespace, ingress, kubeconfig)
        base_url = cluster_mesh.mesh.ingress_url
        labels[:0] = [f"mesh={mesh}", f"function={mesh_function}"]  # a --label given by the user overrides them
    elif testbed is not None:
        options.mesh, base_url = _testbed_in_force(testbed, testbed_set or [])
        if scenario is None and url is None and locustfile is None:
            scenario = "bookinfo-productpage"
        if scenario is not None and calls_grpc_base(scenario):
            base_url = options.mesh.grpc_url  # its methods, on the testbed's gRPC ingress
        labels.insert(0, f"function={testbed}")  # a --label given by the user overrides it
    if base_url is not None and scenario is None and url is None and locustfile is None:
        scenario = "bookinfo-productpage"
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
        http2=http2,
        streams=streams,
        proto=proto or [],
        import_paths=import_path or [],
        tls_verify=None if insecure is None else not insecure,
        ca_file=ca_file,
        locustfile=locustfile,
    )
    if plan.locust is not None:
        check_locustfile(plan)
    where = " on Kubernetes" if count.kubernetes else ""
    terminal.info(f"run {run_id}: {describe_plan(plan)}, {count.count} worker(s){where}")
    result = execute_run(plan, options) if cluster_mesh is None else cluster_mesh.execute(plan, options)
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


def exit_code_for(result: RunResult, *, strict: bool) -> int:
    """0 for a valid run; 1 for an invalid or degraded one when `--strict` was given (else 0)."""
    return 1 if strict and (not result.valid or result.degraded) else 0


def _testbed_in_force(function: str, settings: list[str]) -> tuple[LocalTestbedMesh, str]:
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


@dataclass
class ClusterRun:
    """A run against a mesh in a cluster: its function applied before, removed after."""

    mesh: KubernetesMesh
    function: str
    params: dict[str, str]

    def execute(self, plan: Plan, options: RunOptions) -> RunResult:
        from ..coordinator.run import execute_run

        in_force = self.mesh.apply(self.function, self.params)
        terminal.info(_in_force_line(in_force))
        options.mesh = self.mesh
        try:
            return execute_run(plan, options)
        finally:
            self.mesh.remove()
            terminal.info(f"{self.mesh.name}: {self.function} removed from namespace {self.mesh.namespace}")


def _cluster_mesh(
    mesh: str, function: str, settings: list[str], namespace: str, ingress: str | None, kubeconfig: str | None
) -> ClusterRun:
    """The mesh in the cluster and the function's parameters, checked before anything is applied."""
    from ..coordinator.mesh import KubernetesMesh
    from ..errors import FunctionNotSupported
    from .testbed_cmd import settings_from_pairs

    if not ingress:
        raise UsageError(f"--mesh {mesh}: give the URL of its ingress gateway in front of BookInfo (--ingress URL)")
    params = settings_from_pairs(settings)
    cluster_mesh = KubernetesMesh(mesh, namespace=namespace, kubeconfig=kubeconfig, ingress_url=ingress)
    support = cluster_mesh.support(function, params)  # an unknown function or a bad parameter: UsageError
    if not support.applicable:
        raise FunctionNotSupported(support)
    return ClusterRun(cluster_mesh, function, params)


def _in_force_line(in_force: InForce) -> str:
    line = f"{in_force.function} in force after {in_force.waited_s:.1f}s"
    if in_force.confirmed:
        line += f" (confirmed: {', '.join(in_force.confirmed)})"
    if in_force.unconfirmed:
        line += f"; applied, no status to confirm: {', '.join(in_force.unconfirmed)}"
    return line


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


def summary_table(result: RunResult) -> str:
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
    failures = sum(part.failures for part in result.by_name.values())
    if failures:
        lines.append(f"failures  {failures:,} (the locustfile's own verdicts: failed checks; per name in report.html)")
    for worker in result.workers:
        lost = "  LOST" if worker.lost else ""
        lines.append(
            f"worker    {worker.id}: {worker.requests:,} requests, cpu {worker.cpu_seconds:.2f}s, "
            f"clock offset {worker.clock_offset_ms:+.2f} ms{lost}"
        )
    for service, counts in (result.mesh.replicas if result.mesh is not None else {}).items():
        total = sum(counts.values())
        shares = "  ".join(f"{name}: {count:,} ({100 * count / total:.1f}%)" for name, count in counts.items())
        lines.append(f"replicas  {service}: {shares}")
    lines.append(f"valid     {'yes' if result.valid else 'NO'}" + ("  (degraded)" if result.degraded else ""))
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
