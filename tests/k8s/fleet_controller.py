"""A stand-in for what a cluster does when a Deployment's replica count changes (the Deployment
controller, the scheduler and the kubelet), inside the Kubernetes API stand-in (kmock): it watches the
worker Deployment's `spec.replicas`, and for each replica wanted, creates a Pod object bound to a
"node" and starts a real `meshload worker` process for it (`launch`); for each replica no longer
wanted, stops the newest worker (SIGTERM, as the kubelet does) and deletes its Pod.

It works on the stand-in's stored objects directly, as a controller inside the API server would, so
the API requests the stand-in records are the coordinator's alone. Pods past `schedulable` stay
Pending with the scheduler's reason, and start nothing.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.support.kube_api import KubeApiStandIn

#: (pod name, node name) -> the worker process of that pod.
Launch = Callable[[str, str], subprocess.Popen[bytes]]
POLL_S = 0.05
STOP_TIMEOUT_S = 10.0
UNSCHEDULABLE = "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available"


@dataclass
class _Pod:
    name: str
    node: str
    process: subprocess.Popen[bytes] | None


@dataclass
class FleetController:
    api: KubeApiStandIn
    namespace: str
    deployment: str
    labels: dict[str, str]
    nodes: list[str]
    launch: Launch
    schedulable: int = 1_000
    replica_history: list[int] = field(default_factory=list)  # each replica count it acted on
    created: dict[str, str] = field(default_factory=dict)  # every pod it created: pod name -> node

    def __post_init__(self) -> None:
        self._pods: list[_Pod] = []
        self._serial = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fleet-controller", daemon=True)
        self.error: BaseException | None = None

    def __enter__(self) -> FleetController:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=STOP_TIMEOUT_S)
        for pod in self._pods:
            _stop_process(pod.process)

    def processes(self) -> list[subprocess.Popen[bytes]]:
        return [pod.process for pod in self._pods if pod.process is not None]

    def running(self) -> list[_Pod]:
        return [pod for pod in self._pods if pod.process is not None and pod.process.poll() is None]

    # -- the loop --------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.wait(POLL_S):
                wanted = self.api.call(self._replicas)
                if wanted is None or wanted == len(self._pods):
                    continue
                self.replica_history.append(wanted)
                while len(self._pods) < wanted:
                    self._add_pod()
                while len(self._pods) > wanted:
                    self._remove_pod()
        except BaseException as exc:  # the test reads it: a silent controller would look like a slow one
            self.error = exc
            raise

    def _replicas(self, emulator: Any) -> int | None:
        for (resource, namespace, name), obj in emulator.objects.items():
            if (resource.plural, namespace, name) == ("deployments", self.namespace, self.deployment):
                return None if obj.deleted else int(obj.raw.get("spec", {}).get("replicas", 1))
        return None

    def _add_pod(self) -> None:
        index = len(self._pods)
        self._serial += 1
        name = f"{self.deployment}-{self._serial:05d}"
        node = self.nodes[index % len(self.nodes)]
        scheduled = index < self.schedulable
        status: dict[str, Any] = {"phase": "Running" if scheduled else "Pending"}
        if not scheduled:
            status["conditions"] = [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": UNSCHEDULABLE}
            ]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": self.namespace, "labels": dict(self.labels)},
            "spec": {"nodeName": node} if scheduled else {},
            "status": status,
        }

        def create(emulator: Any) -> None:
            emulator.objects["v1/pods", self.namespace, name] = pod

        self.api.call(create)
        self.created[name] = node
        self._pods.append(_Pod(name, node, self.launch(name, node) if scheduled else None))

    def _remove_pod(self) -> None:
        pod = self._pods.pop()
        _stop_process(pod.process)

        def delete(emulator: Any) -> None:
            for (resource, namespace, name), obj in emulator.objects.items():
                if (resource.plural, namespace, name) == ("pods", self.namespace, pod.name) and not obj.deleted:
                    obj.delete()

        self.api.call(delete)


def _stop_process(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
