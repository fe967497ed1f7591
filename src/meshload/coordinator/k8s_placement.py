"""Workers from a Kubernetes fleet (`--workers k8s:N`): the worker Deployment of the chart
(`k8s/meshload`) is scaled to at least N replicas through its scale subresource, the run waits until
N idle workers have registered in Redis, and afterwards — however the run ended — the Deployment is
scaled back to the replica count it had.

Kubernetes places the pods (the chart spreads them across nodes and zones); meshload schedules
nothing itself. Only what the chart's Role grants is used: get and patch on the worker Deployment's
`deployments/scale` (by name), and list on pods, read only to say why workers did not come (Pending
pods and the scheduler's reasons).

Where the Deployment is: `KubernetesFleet`, from the command line or the environment the chart gives
its coordinator pods (MESHLOAD_K8S_WORKER_DEPLOYMENT, MESHLOAD_K8S_WORKER_SELECTOR and the pod's own
namespace, MESHLOAD_POD_NAMESPACE); the API from a kubeconfig or, inside a pod, its service account.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis

from ..errors import ApiRefused, MeshError, RunError, UsageError
from ..pipeline import wire
from .mesh.cluster import Cluster

log = logging.getLogger(__name__)

#: The chart's coordinator pods get the worker Deployment's name, its pods' label selector and their
#: own namespace (the downward API) in these variables.
DEPLOYMENT_ENV = "MESHLOAD_K8S_WORKER_DEPLOYMENT"
SELECTOR_ENV = "MESHLOAD_K8S_WORKER_SELECTOR"
POD_NAMESPACE_ENV = "MESHLOAD_POD_NAMESPACE"
#: The same settings as `meshload run`'s --k8s-namespace and --k8s-wait read them (for studies).
NAMESPACE_ENV = "MESHLOAD_K8S_NAMESPACE"
WAIT_ENV = "MESHLOAD_K8S_WAIT"
#: How long new workers may take to be scheduled, pull the image, start and register (a new node
#: pulling the image for the first time takes minutes).
DEFAULT_WAIT_S = 300.0
#: How often Redis is looked at while waiting for workers.
POLL_S = 0.2
#: Deadline of one API request.
REQUEST_TIMEOUT_S = 10.0
#: Inside a pod: the namespace of its service account.
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


@dataclass(frozen=True)
class KubernetesFleet:
    """Where the fleet's workers are: their Deployment, and how to reach the API."""

    deployment: str
    namespace: str = ""  # "": the coordinator pod's, else the kubeconfig context's, else "default"
    selector: str = ""  # label selector of the worker pods ("": their pods are not looked at)
    wait_s: float = DEFAULT_WAIT_S
    kubeconfig: str | None = None  # None: $KUBECONFIG, ~/.kube/config, or the pod's service account
    context: str | None = None
    api_host: str | None = None  # a plain http:// API server, needing no configuration (tests)

    @classmethod
    def from_environment(
        cls,
        *,
        deployment: str | None = None,
        namespace: str | None = None,
        selector: str | None = None,
        wait_s: float | None = None,
    ) -> KubernetesFleet:
        """The fleet from the given values, else the environment (the chart's variables, and those of
        `meshload run`'s options); UsageError without a Deployment."""
        from ..scenarios.durations import parse_duration_s

        deployment = deployment or os.environ.get(DEPLOYMENT_ENV, "")
        if wait_s is None and os.environ.get(WAIT_ENV):
            wait_s = parse_duration_s(os.environ[WAIT_ENV], option=WAIT_ENV)
        if not deployment:
            raise UsageError(
                "--workers k8s:N: which Deployment runs the workers? Give --k8s-deployment NAME (or "
                f"{DEPLOYMENT_ENV}; the chart sets it in its coordinator pods)"
            )
        if wait_s is not None and not wait_s > 0:
            raise UsageError(f"--k8s-wait: must be longer than 0 s (got {wait_s:g})")
        return cls(
            deployment=deployment,
            namespace=namespace or os.environ.get(NAMESPACE_ENV) or os.environ.get(POD_NAMESPACE_ENV, ""),
            selector=selector if selector is not None else os.environ.get(SELECTOR_ENV, ""),
            wait_s=wait_s if wait_s is not None else DEFAULT_WAIT_S,
        )


class WorkerDeployment:
    """The worker Deployment through the API: its replica count, and its pods' states."""

    def __init__(self, fleet: KubernetesFleet, cluster: Cluster, namespace: str) -> None:
        self.fleet = fleet
        self.cluster = cluster
        self.namespace = namespace

    @classmethod
    def connect(cls, fleet: KubernetesFleet) -> WorkerDeployment:
        cluster = Cluster.connect(
            kubeconfig=fleet.kubeconfig, context=fleet.context, host=fleet.api_host, request_timeout_s=REQUEST_TIMEOUT_S
        )
        return cls(fleet, cluster, fleet.namespace or _context_namespace(fleet) or "default")

    @property
    def name(self) -> str:
        return f"{self.namespace}/{self.fleet.deployment}"

    def replicas(self) -> int:
        """The Deployment's desired replica count (its scale's spec)."""
        scale = self._scale_call("get")
        return int((scale.get("spec") or {}).get("replicas") or 0)

    def scale_to(self, replicas: int) -> None:
        self._scale_call("patch", {"spec": {"replicas": replicas}})
        log.info("scaled Deployment %s to %d replicas", self.name, replicas)

    def _scale_call(self, verb: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        import kubernetes

        # Any: the raw response (`_preload_content=False`) is read here, not the client's models.
        apps: Any = kubernetes.client.AppsV1Api(self.cluster.api_client)
        target = f"the scale of Deployment {self.name}"
        options: dict[str, Any] = {"_preload_content": False, "_request_timeout": self.cluster.request_timeout_s}
        with self.cluster.translating(verb, "deployments/scale (apps)", target, self.namespace):
            try:
                if verb == "get":
                    response = apps.read_namespaced_deployment_scale(self.fleet.deployment, self.namespace, **options)
                else:
                    response = apps.patch_namespaced_deployment_scale(
                        self.fleet.deployment,
                        self.namespace,
                        body,
                        _content_type="application/merge-patch+json",
                        **options,
                    )
            except kubernetes.client.exceptions.ApiException as exc:
                if exc.status == 404:
                    raise ApiRefused(
                        f"the Kubernetes API at {self.cluster.host} has no Deployment {self.name}; "
                        "check --k8s-deployment and --k8s-namespace (the chart's is RELEASE-meshload-worker)"
                    ) from exc
                raise
            data = response.data or b"{}"
        parsed = json.loads(data)
        return parsed if isinstance(parsed, dict) else {}

    def describe_pods(self) -> str:
        """The worker pods' phases and why any waits, in a few words (never fails: it only explains)."""
        if not self.fleet.selector:
            return "the worker pods were not looked at (no --k8s-selector)"
        import kubernetes

        core: Any = kubernetes.client.CoreV1Api(self.cluster.api_client)
        try:
            with self.cluster.translating("list", "pods", f"pods {self.fleet.selector}", self.namespace):
                response = core.list_namespaced_pod(
                    self.namespace,
                    label_selector=self.fleet.selector,
                    _preload_content=False,
                    _request_timeout=self.cluster.request_timeout_s,
                )
                pods = json.loads(response.data or b"{}").get("items") or []
        except MeshError as exc:
            return f"the worker pods could not be listed ({exc})"
        if not pods:
            return f"no pod matches {self.fleet.selector} in namespace {self.namespace}"
        phases = Counter(_pod_state(pod) for pod in pods)
        reasons = sorted({reason for pod in pods if (reason := _waiting_reason(pod))})
        text = ", ".join(f"{count} {state}" for state, count in sorted(phases.items()))
        return f"pods: {text}" + (f" ({'; '.join(reasons)[:300]})" if reasons else "")


def _pod_state(pod: dict[str, Any]) -> str:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    return str((pod.get("status") or {}).get("phase") or "Pending")


def _waiting_reason(pod: dict[str, Any]) -> str:
    """Why a pod is not running yet: the scheduler's condition, or a container's waiting reason."""
    status = pod.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return f"{condition.get('reason', 'Unschedulable')}: {condition.get('message', '')}".strip(": ")
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            return f"{waiting['reason']}: {waiting.get('message', '')}".strip(": ")
    return ""


def _context_namespace(fleet: KubernetesFleet) -> str:
    """The namespace of the kubeconfig's context, else of the pod's service account, else ""."""
    if fleet.api_host is not None:
        return ""
    import kubernetes

    try:
        contexts, active = kubernetes.config.list_kube_config_contexts(config_file=fleet.kubeconfig)
        chosen = next((c for c in contexts if c.get("name") == fleet.context), None) if fleet.context else active
        namespace = str(((chosen or {}).get("context") or {}).get("namespace") or "")
        if namespace:
            return namespace
    except (kubernetes.config.ConfigException, OSError):
        pass  # no kubeconfig: inside a pod
    try:
        with open(SERVICE_ACCOUNT_NAMESPACE, encoding="utf-8") as file:
            return file.read().strip()
    except OSError:
        return ""


# -- placement ----------------------------------------------------------------------------------


@dataclass
class KubernetesWorkers:
    """Idle fleet workers for one run, and how to give the Deployment back its replica count."""

    ids: list[str]
    restore: Callable[[], None]  # scales the Deployment back (once; nothing when it was not scaled)


def place_kubernetes_workers(client: redis.Redis, count: int, fleet: KubernetesFleet) -> KubernetesWorkers:
    """Scale the fleet to at least `count` workers and wait until `count` are idle in Redis.

    When this fails (the API refused, too few workers came in time, or the user interrupted), the
    Deployment is already back to its replica count when the error reaches the caller."""
    deployment = WorkerDeployment.connect(fleet)
    scale_back = _ScaleBack(deployment, deployment.replicas())
    try:
        scale_back.scale_up_to(count)
        ids = wait_for_idle_workers(client, count, deployment, scaled_from=scale_back.replicas)
    except BaseException:
        scale_back()
        raise
    return KubernetesWorkers(ids=ids, restore=scale_back)


@contextmanager
def fleet_held(count: int, fleet: KubernetesFleet) -> Iterator[WorkerDeployment]:
    """The fleet scaled to at least `count` for the whole block (a study's cells), then scaled back."""
    deployment = WorkerDeployment.connect(fleet)
    scale_back = _ScaleBack(deployment, deployment.replicas())
    try:
        scale_back.scale_up_to(count)
        yield deployment
    finally:
        scale_back()


class _ScaleBack:
    """Called, scales the Deployment back to `replicas` (once, and only when it was scaled up)."""

    def __init__(self, deployment: WorkerDeployment, replicas: int) -> None:
        self.deployment = deployment
        self.replicas = replicas
        self.scaled = False

    def scale_up_to(self, count: int) -> None:
        if self.replicas >= count:
            return
        # Marked before the request: an interrupt while it is on its way may leave it applied.
        self.scaled = True
        try:
            self.deployment.scale_to(count)
        except MeshError:
            self.scaled = False  # refused, or no answer at all: nothing to take back (nor a way to)
            raise

    def __call__(self) -> None:
        if not self.scaled:
            return
        self.scaled = False
        try:
            self.deployment.scale_to(self.replicas)
        except MeshError as exc:
            log.error("could not scale Deployment %s back to %d replicas: %s", self.deployment.name, self.replicas, exc)


def wait_for_idle_workers(
    client: redis.Redis, count: int, deployment: WorkerDeployment, *, scaled_from: int
) -> list[str]:
    """The ids of `count` idle registered workers, once there are; RunError after `wait_s`."""
    from .placement import idle_fleet_workers

    deadline = time.monotonic() + deployment.fleet.wait_s
    while True:
        idle = idle_fleet_workers(client)
        if len(idle) >= count:
            return idle[:count]
        if time.monotonic() > deadline:
            break
        time.sleep(POLL_S)
    registered = len(client.hgetall(wire.fleet_key()))
    busy = max(0, registered - len(idle))
    scaled = f"scaled from {scaled_from} to {count} replicas" if scaled_from < count else f"{scaled_from} replicas"
    raise RunError(
        f"only {len(idle)} of {count} workers were idle in Redis after {deployment.fleet.wait_s:g}s"
        + (f" ({busy} more busy with another run)" if busy else "")
        + f"; Deployment {deployment.name}: {scaled}, {deployment.describe_pods()}. Check "
        f"`kubectl -n {deployment.namespace} get pods"
        + (f" -l {deployment.fleet.selector}" if deployment.fleet.selector else "")
        + "` (Pending: no node with room; CrashLoopBackOff: the worker's log) and that the workers reach Redis"
        + ("; the Deployment is scaled back" if scaled_from < count else "")
    )
