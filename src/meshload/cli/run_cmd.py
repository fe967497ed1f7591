"""`meshload run`: one headless run against a URL or a scenario file, with SMP reports at the end.

Exit code: 0 when the run is valid (or `--strict` was not given), 1 when it is invalid or degraded and
`--strict` was given (or the run could not be carried out), 2 for a usage error, 130/143 when SIGINT/
SIGTERM stopped it (what was measured until then is written, marked interrupted).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from .. import interrupts, terminal
from ..errors import UsageError
from .find_max_cmd import FIND_MAX_STEP_DURATION, search_max_rate
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
from .run_mesh import cluster_mesh, testbed_in_force
from .run_outcome import exit_code_for, tell_outcome
from .run_plan import Arrival, build_plan, check_locustfile, describe_plan

if TYPE_CHECKING:  # imported when the command runs, so `meshload --help` stays fast
    from .run_mesh import ClusterRun

DEFAULT_RUNS_DIR = Path("runs")

# The command line's words for the choices (typer checks them and lists them in --help); they are
# the coordinator's own (`RunOptions`), which mypy holds them to. `Arrival` is the plan's (run_plan.py).
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
            help="Workers sharing the load: N (local processes, at most 4 per CPU, or idle fleet workers on --redis), "
            "or k8s:N "
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
    checkpoint: Annotated[
        str | None,
        option(
            "--checkpoint",
            env="CHECKPOINT",
            help="Write the reports this often during the run (e.g. 5m), marked partial, so a crash leaves "
            "the latest on disk.",
        ),
    ] = None,
    find_max: Annotated[
        bool,
        option(
            "--find-max",
            env="FIND_MAX",
            help="Search the highest open-loop rate meeting --slo: short runs (--duration each, default 10s) "
            "from --rate, doubled or halved, then bisected; prints the rate and its bracket.",
        ),
    ] = False,
    slo: Annotated[
        str | None, option("--slo", env="SLO", help="--find-max: the latency objective, e.g. 'p99<50ms'.")
    ] = None,
    errors_budget: Annotated[
        str | None, option("--errors", env="ERRORS", help="--find-max: the error budget, e.g. '<0.1%' (default 0).")
    ] = None,
    precision: Annotated[
        float,
        option("--precision", env="PRECISION", help="--find-max: stop when the bracket is narrower than this share."),
    ] = 0.05,
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
    from ..interrupts import Interrupted
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
        checkpoint_s=checkpoint_s(checkpoint),
        prometheus=prometheus_source(prometheus, prometheus_step),
    )
    if find_max and duration is None:
        duration = FIND_MAX_STEP_DURATION  # each step's; a search is many short runs
    base_url = None
    labels = list(label or [])
    cluster_run: ClusterRun | None = None
    if mesh is not None:
        if testbed is not None:
            raise UsageError("--mesh and --testbed name two meshes; choose one")
        cluster_run = cluster_mesh(mesh, mesh_function, mesh_set or [], namespace, ingress, kubeconfig)
        base_url = cluster_run.mesh.ingress_url
        labels[:0] = [f"mesh={mesh}", f"function={mesh_function}"]  # a --label given by the user overrides them
    elif testbed is not None:
        options.mesh, base_url = testbed_in_force(testbed, testbed_set or [])
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
    if find_max:
        search_max_rate(plan, options, slo, errors_budget, precision)
        return
    where = " on Kubernetes" if count.kubernetes else ""
    terminal.info(f"run {run_id}: {describe_plan(plan)}, {count.count} worker(s){where}")
    try:
        result = execute_run(plan, options) if cluster_run is None else cluster_run.execute(plan, options)
    except Interrupted as exc:
        terminal.error(f"interrupted ({exc.name}) before any load was measured; nothing was written")
        raise typer.Exit(exc.exit_code) from None
    tell_outcome(result, out_dir)
    record_run(result, out_dir, store=store, enabled=history)
    code = exit_code_for(result, strict=strict)
    if code:
        raise typer.Exit(code)


def checkpoint_s(text: str | None) -> float:
    """`--checkpoint` in seconds (0: none)."""
    from ..scenarios.durations import parse_duration_s

    return parse_duration_s(text, option="--checkpoint") if text is not None else 0.0


def register(app: typer.Typer) -> None:
    # SIGINT and SIGTERM stop the run in order: the figures so far are written, marked interrupted.
    app.command("run")(interrupts.stopping_in_order(run))
