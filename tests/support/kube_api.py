"""A Kubernetes API server stand-in for tests: kmock's KubernetesEmulator (an aiohttp server that speaks
the API's discovery, CRUD, merge patches and Status errors, and keeps the objects in memory) on a free
loopback port, run on its own event loop in a thread so the official (synchronous) client can call it.

    with KubeApiStandIn(custom_kinds) as api:
        cluster = Cluster.connect(host=api.url, discovery_cache=tmp_path / "discovery.json")
        api.objects()                     # what the server stores now
        api.refuse("post", group, version, plural, 403, message)
        api.serve_scale()                 # deployments/NAME/scale, as the real API server has it

kmock does no validation, defaulting, admission or label selection, and runs no controllers: a test that
needs a controller's status writes it itself, as the controller would (a PATCH of the object).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any

import kmock

START_TIMEOUT_S = 10.0


class KubeApiStandIn:
    def __init__(self, custom_kinds: Iterable[tuple[str, str, str]] = ()) -> None:
        """`custom_kinds`: (apiVersion, kind, plural) of the namespaced custom resources to serve."""
        self._custom_kinds = tuple(custom_kinds)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="kube-api-stand-in", daemon=True)
        self._started: Future[str] = Future()
        self._stop: asyncio.Event | None = None
        self._emulator: Any = None
        self.url = ""

    def __enter__(self) -> KubeApiStandIn:
        self._thread.start()
        self.url = self._started.result(timeout=START_TIMEOUT_S)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=START_TIMEOUT_S)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # the test waiting on _started must hear of it
            if not self._started.done():
                self._started.set_exception(exc)
            raise
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator, host="127.0.0.1") as server:
            emulator.resources.load_bundled()
            verbs = ["get", "list", "watch", "create", "update", "patch", "delete"]
            for api_version, kind, plural in self._custom_kinds:
                resource: Any = {
                    "kind": kind,
                    "singular": kind.lower(),
                    "namespaced": True,
                    "verbs": verbs,
                    "subresources": ["status"],
                }
                emulator.resources[f"{api_version}/{plural}"] = resource
            self._emulator = emulator
            self._started.set_result(str(server.url).rstrip("/"))
            await self._stop.wait()

    def call(self, fn: Callable[[Any], Any]) -> Any:
        """Run `fn(emulator)` on the server's loop (kmock's state is the loop's)."""

        async def run() -> Any:
            return fn(self._emulator)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=START_TIMEOUT_S)

    def objects(self) -> dict[tuple[str, str, str], dict[str, Any]]:
        """{(plural, namespace, name): object} of every object that exists now."""

        def snapshot(emulator: Any) -> dict[tuple[str, str, str], dict[str, Any]]:
            found = {}
            for (resource, namespace, name), obj in emulator.objects.items():
                if not obj.deleted:
                    found[(resource.plural, namespace, name)] = obj.raw
            return found

        return self.call(snapshot)

    def requests(self) -> list[tuple[str, str]]:
        """(method, path) of every request served so far."""
        return self.call(lambda emulator: [(request.method, request.url.path) for request in emulator])

    def serve_scale(self, group: str = "apps", version: str = "v1", plural: str = "deployments") -> None:
        """The `scale` subresource of that resource, as the API server serves it: GET answers an
        autoscaling/v1 Scale made from the object, PATCH changes the object's `spec.replicas` (kmock
        stores the patch into the object itself) and answers the new Scale. Below `refuse`'s answers
        in priority, so a refusal of the resource wins."""

        def scale_of(request: Any) -> dict[str, Any]:
            key = (request.resource, request.namespace, request.name)
            if key not in self._emulator.objects or self._emulator.objects[key].deleted:
                raise kmock.KubernetesObjectNotFoundError()
            obj = self._emulator.objects[key].raw
            metadata = obj.get("metadata", {})
            labels = obj.get("spec", {}).get("selector", {}).get("matchLabels", {})
            return {
                "apiVersion": "autoscaling/v1",
                "kind": "Scale",
                "metadata": {"name": metadata.get("name"), "namespace": metadata.get("namespace")},
                "spec": {"replicas": obj.get("spec", {}).get("replicas", 1)},
                "status": {
                    "replicas": obj.get("status", {}).get("replicas", 0),
                    "selector": ",".join(f"{key}={value}" for key, value in sorted(labels.items())),
                },
            }

        def install(emulator: Any) -> None:
            for method in ("get", "patch"):
                where = (emulator**-1)[method, kmock.resource(group, version, plural), kmock.subresource("scale")]
                where << scale_of  # kmock's DSL: `<<` installs the reaction

        self.call(install)

    def refuse(
        self,
        method: str,
        group: str,
        version: str,
        plural: str,
        status: int,
        message: str,
        subresource: str | None = None,
    ) -> None:
        """Answer `method` requests on that resource (or on its `subresource`) with a Kubernetes Status
        error (e.g. RBAC's 403)."""
        reason = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound"}.get(status, "Failure")
        body = {
            "apiVersion": "v1",
            "kind": "Status",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": status,
        }

        def install(emulator: Any) -> None:
            criteria = [method, kmock.resource(group, version, plural)]
            if subresource is not None:
                criteria.append(kmock.subresource(subresource))
            emulator[tuple(criteria)] << status << body

        self.call(install)
