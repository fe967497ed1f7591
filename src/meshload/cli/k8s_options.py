"""The options of `meshload run` that place workers on a Kubernetes fleet (`--workers k8s:N`) and keep
a run's results in Redis, and how their words become the coordinator's settings.

The chart's coordinator pods get the Deployment, the selector and their namespace in the environment
(MESHLOAD_K8S_WORKER_DEPLOYMENT, MESHLOAD_K8S_WORKER_SELECTOR, MESHLOAD_POD_NAMESPACE) and
MESHLOAD_RESULTS_TTL, so a Job's command line needs none of these options.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from ..errors import UsageError
from .options import option

if TYPE_CHECKING:
    from ..coordinator.k8s_placement import KubernetesFleet
    from ..coordinator.placement import Placement
    from ..scenarios.worker_count import WorkerCount

K8sDeploymentOption = Annotated[
    str | None,
    option(
        "--k8s-deployment",
        env="K8S_WORKER_DEPLOYMENT",
        help="--workers k8s:N: the Deployment of the fleet's workers (the chart's: RELEASE-meshload-worker).",
        show_default=False,
    ),
]
K8sNamespaceOption = Annotated[
    str | None,
    option(
        "--k8s-namespace",
        env="K8S_NAMESPACE",
        help="--workers k8s:N: its namespace (default: this pod's, MESHLOAD_POD_NAMESPACE, else the "
        "kubeconfig context's).",
        show_default=False,
    ),
]
K8sSelectorOption = Annotated[
    str | None,
    option(
        "--k8s-selector",
        env="K8S_WORKER_SELECTOR",
        help="--workers k8s:N: label selector of the worker pods, to say why workers did not come.",
        show_default=False,
    ),
]
K8sWaitOption = Annotated[
    str | None,
    option(
        "--k8s-wait",
        env="K8S_WAIT",
        help="--workers k8s:N: how long the workers may take to come up and register (default 5m).",
        show_default=False,
    ),
]
KubeconfigOption = Annotated[
    str | None,
    option(
        "--kubeconfig",
        env="KUBECONFIG",
        help="--workers k8s:N and --mesh: the kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in a "
        "pod its service account).",
        show_default=False,
    ),
]
ResultsTtlOption = Annotated[
    str | None,
    option(
        "--results-ttl",
        env="RESULTS_TTL",
        help="With --redis: how long the run's smp.json (and its other files, when small) stay in Redis for "
        "`meshload results get` (default 720h; 0: not kept).",
        show_default=False,
    ),
]


def worker_placement(workers: str, placement: Placement) -> tuple[WorkerCount, Placement]:
    """`--workers` (N or k8s:N) with `--placement`: how many workers, and from where."""
    from ..scenarios.worker_count import WorkerCount, parse_worker_count

    try:
        count = parse_worker_count(workers)
    except ValueError as exc:
        raise UsageError(f"--workers: {exc}") from exc
    if count.kubernetes and placement not in ("auto", "k8s"):
        raise UsageError(f"--workers {count} takes the workers from Kubernetes; drop --placement {placement}")
    if count.kubernetes or placement == "k8s":
        return WorkerCount(count.count, kubernetes=True), "k8s"
    return count, placement


def kubernetes_fleet(
    deployment: str | None,
    namespace: str | None,
    selector: str | None,
    wait: str | None,
    kubeconfig: str | None = None,
) -> KubernetesFleet:
    import dataclasses

    from ..coordinator.k8s_placement import KubernetesFleet
    from ..scenarios.durations import parse_duration_s

    wait_s = parse_duration_s(wait, option="--k8s-wait") if wait is not None else None
    fleet = KubernetesFleet.from_environment(
        deployment=deployment, namespace=namespace, selector=selector, wait_s=wait_s
    )
    return dataclasses.replace(fleet, kubeconfig=kubeconfig) if kubeconfig else fleet


def results_ttl_s(text: str | None) -> float:
    """Seconds from `--results-ttl` (its default without one)."""
    from ..pipeline.wire import DEFAULT_RESULTS_TTL_S
    from ..scenarios.durations import parse_duration_s

    return DEFAULT_RESULTS_TTL_S if text is None else parse_duration_s(text, option="--results-ttl")
