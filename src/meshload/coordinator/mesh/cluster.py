"""The Kubernetes API, as the mesh adapters use it: get, list, create or replace, merge-patch and delete
any kind by apiVersion and kind, through the official `kubernetes` client's DynamicClient (discovery
finds each kind's plural and scope, so custom resources and built-in kinds are handled alike).

Configuration comes from a kubeconfig (`--kubeconfig`, `$KUBECONFIG` or `~/.kube/config`) or, inside a
pod, from the service account. Every failure becomes one line for the user:

    ClusterUnreachable   no configuration, or no API server answered at the configured address
    ApiRefused           403 (which verb on which resource is missing), 401, a kind the cluster does not
                         serve (a mesh or its CRDs not installed), or another refusal with its reason
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ...errors import ApiRefused, ClusterUnreachable
from .manifests import Object, merge_patch_between

DEFAULT_REQUEST_TIMEOUT_S = 10.0


class Unknown:
    """Marks "not read yet" where None already means "does not exist"."""


UNKNOWN = Unknown()
_VERBS = {"get", "list", "create", "update", "patch", "delete"}


def _client_module() -> Any:
    try:
        import kubernetes
    except ImportError as exc:  # an optional dependency: `mesh render` works without it
        raise ClusterUnreachable("the Kubernetes client is not installed: pip install 'meshload[k8s]'") from exc
    return kubernetes


class Cluster:
    """One Kubernetes API server, reached with the official client."""

    def __init__(
        self,
        api_client: Any,
        *,
        discovery_cache: Path | None = None,
        request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
    ) -> None:
        self._api_client = api_client
        self._discovery_cache = discovery_cache
        self._request_timeout_s = request_timeout_s
        self._dynamic: Any = None

    @classmethod
    def connect(
        cls,
        *,
        kubeconfig: str | Path | None = None,
        context: str | None = None,
        host: str | None = None,
        discovery_cache: Path | None = None,
        request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
    ) -> Cluster:
        """A kubeconfig when one is given or found, else the in-cluster service account; `host` alone
        (a plain http:// API server, as in tests) needs neither."""
        kubernetes = _client_module()
        configuration = kubernetes.client.Configuration()
        if host is not None:
            configuration.host = host.rstrip("/")
        else:
            _load_configuration(kubernetes, configuration, kubeconfig, context)
        configuration.retries = 1  # an unreachable server is reported at once, not after urllib3's 3 tries
        return cls(
            kubernetes.client.ApiClient(configuration),
            discovery_cache=discovery_cache,
            request_timeout_s=request_timeout_s,
        )

    @property
    def host(self) -> str:
        return str(self._api_client.configuration.host)

    @property
    def api_client(self) -> Any:
        """The official client's ApiClient, for its typed APIs (`kubernetes.client.AppsV1Api(api_client)`):
        call them inside `translating(...)`, and with `request_timeout_s`."""
        return self._api_client

    @property
    def request_timeout_s(self) -> float:
        return self._request_timeout_s

    @contextmanager
    def translating(self, verb: str, resource: str, target: str, namespace: str | None) -> Iterator[None]:
        """Typed-API calls in this block fail as this class's own do: one line (`resource` as RBAC
        names it, e.g. "deployments/scale"; `target` the object, e.g. "Deployment perf/workers")."""
        kubernetes = _client_module()
        import urllib3

        where = f"in namespace {namespace}" if namespace else "cluster-wide"
        try:
            yield
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unreachable(self.host, exc) from exc
        except kubernetes.client.exceptions.ApiException as exc:
            raise _refused(exc, verb, resource, where, target, self.host) from exc

    # -- reads -----------------------------------------------------------------------------------

    def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> Object | None:
        """The object, or None when it does not exist."""
        kubernetes = _client_module()
        with self._translated("get", api_version, kind, namespace, name) as resource:
            try:
                found = resource.get(name=name, namespace=namespace, **self._raw)
            except kubernetes.dynamic.exceptions.NotFoundError:
                return None
            return _json(found, {})

    def list(self, api_version: str, kind: str, namespace: str | None) -> list[Object]:
        """Every object of the kind in `namespace` (every namespace when None)."""
        with self._translated("list", api_version, kind, namespace, None) as resource:
            listing = _json(resource.get(namespace=namespace, **self._raw), {})
            return [dict(item) for item in listing.get("items") or []]

    # -- writes ----------------------------------------------------------------------------------

    def apply(self, body: Object, current: Object | Unknown | None = UNKNOWN) -> Object:
        """Create the object, or bring the existing one to `body`: its top-level fields other than
        metadata and status become `body`'s (removed keys included), its labels and annotations gain
        `body`'s. A merge patch, not a PUT, so there is no resourceVersion race with controllers.
        `current`: the object as just read (None: absent), to spare the GET."""
        api_version, kind = body["apiVersion"], body["kind"]
        name, namespace = body["metadata"]["name"], body["metadata"].get("namespace")
        if isinstance(current, Unknown):
            current = self.get(api_version, kind, name, namespace)
        if current is None:
            with self._translated("create", api_version, kind, namespace, name) as resource:
                return _json(resource.create(body=body, namespace=namespace, **self._raw), body)
        owned_fields = {key for key in body if key not in ("apiVersion", "kind", "metadata", "status")}
        present_fields = {key for key in current if key not in ("apiVersion", "kind", "metadata", "status")}
        patch = merge_patch_between(
            {key: current[key] for key in present_fields},
            {key: body[key] for key in owned_fields},
        )
        metadata = {part: body["metadata"][part] for part in ("labels", "annotations") if body["metadata"].get(part)}
        if metadata:
            patch["metadata"] = metadata
        if not patch:
            return current
        return self.patch(api_version, kind, name, namespace, patch)

    def patch(self, api_version: str, kind: str, name: str, namespace: str | None, patch: Object) -> Object:
        """A JSON merge patch (RFC 7386): null removes a key, a list is replaced whole."""
        with self._translated("patch", api_version, kind, namespace, name) as resource:
            patched = resource.patch(
                body=patch, name=name, namespace=namespace, content_type="application/merge-patch+json", **self._raw
            )
            return _json(patched, patch)

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None) -> bool:
        """Delete the object; False when it was already gone."""
        kubernetes = _client_module()
        with self._translated("delete", api_version, kind, namespace, name) as resource:
            try:
                resource.delete(name=name, namespace=namespace, **self._raw)
            except kubernetes.dynamic.exceptions.NotFoundError:
                return False
            return True

    # -- plumbing --------------------------------------------------------------------------------

    @property
    def _raw(self) -> dict[str, Any]:
        """Request options: the HTTP response itself (parsed here as plain JSON, so a list without
        `kind`, as some API servers send, is fine), and a deadline."""
        return {"serialize": False, "_request_timeout": self._request_timeout_s}

    def _resource(self, api_version: str, kind: str) -> Any:
        kubernetes = _client_module()
        if self._dynamic is None:
            cache = str(self._discovery_cache) if self._discovery_cache is not None else None
            self._dynamic = kubernetes.dynamic.DynamicClient(self._api_client, cache_file=cache)
        return self._dynamic.resources.get(api_version=api_version, kind=kind)

    @contextmanager
    def _translated(
        self, verb: str, api_version: str, kind: str, namespace: str | None, name: str | None
    ) -> Iterator[Any]:
        """The resource for (api_version, kind), with every client failure turned into one line."""
        assert verb in _VERBS
        kubernetes = _client_module()
        import urllib3

        where = f"in namespace {namespace}" if namespace else "cluster-wide"
        target = f"{kind} {namespace + '/' if namespace else ''}{name}" if name else f"{kind} objects {where}"
        try:
            resource = self._resource(api_version, kind)
        except kubernetes.dynamic.exceptions.ResourceNotFoundError as exc:
            raise ApiRefused(
                f"the Kubernetes API at {self.host} serves no {kind} in {api_version}: is the mesh "
                "(with its custom resource definitions) installed in this cluster?"
            ) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unreachable(self.host, exc) from exc
        except kubernetes.client.exceptions.ApiException as exc:
            raise _refused(exc, verb, f"{kind} ({api_version})", where, target, self.host) from exc
        plural = f"{resource.name}.{resource.group}" if resource.group else str(resource.name)
        try:
            yield resource
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unreachable(self.host, exc) from exc
        except kubernetes.client.exceptions.ApiException as exc:
            raise _refused(exc, verb, plural, where, target, self.host) from exc


def _json(response: Any, fallback: Object) -> Object:
    """The JSON object of an HTTP response (an empty body, as some servers send on create, is `fallback`)."""
    data = getattr(response, "data", b"") or b""
    if not data.strip():
        return dict(fallback)
    parsed = json.loads(data)
    return parsed if isinstance(parsed, dict) else dict(fallback)


def _load_configuration(
    kubernetes: Any, configuration: Any, kubeconfig: str | Path | None, context: str | None
) -> None:
    path = kubeconfig or os.environ.get("KUBECONFIG") or Path.home() / ".kube" / "config"
    paths = [Path(p) for p in str(path).split(os.pathsep) if p]
    if kubeconfig is not None and not all(p.is_file() for p in paths):
        raise ClusterUnreachable(f"--kubeconfig {kubeconfig}: no such file")
    try:
        if any(p.is_file() for p in paths):
            kubernetes.config.load_kube_config(
                config_file=str(path), context=context, client_configuration=configuration
            )
            return
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            kubernetes.config.load_incluster_config(client_configuration=configuration)
            return
    except kubernetes.config.ConfigException as exc:
        raise ClusterUnreachable(f"Kubernetes configuration {path}: {exc}") from exc
    raise ClusterUnreachable(
        f"no Kubernetes configuration: no kubeconfig at {path} and not inside a cluster; "
        "set KUBECONFIG or pass --kubeconfig"
    )


def _unreachable(host: str, exc: BaseException) -> ClusterUnreachable:
    reason = getattr(exc, "reason", None) or exc
    return ClusterUnreachable(
        f"no Kubernetes API answered at {host} ({reason}); check the kubeconfig's server and that the cluster runs"
    )


def _refused(exc: Any, verb: str, resource: str, where: str, target: str, host: str) -> ApiRefused:
    status = int(getattr(exc, "status", 0) or 0)
    message = _status_message(exc)
    if status == 403:
        return ApiRefused(
            f"the Kubernetes API refused to {verb} {target} (403 Forbidden): the account needs RBAC permission "
            f"to {verb} {resource} {where}; the server said: {message}"
        )
    if status == 401:
        return ApiRefused(f"the Kubernetes API at {host} did not accept the credentials (401): {message}")
    return ApiRefused(f"the Kubernetes API refused to {verb} {target} ({status} {exc.reason}): {message}")


def _status_message(exc: Any) -> str:
    """The `message` of the API server's Status body, else the HTTP reason."""
    body = getattr(exc, "body", None)
    if body:
        try:
            return str(json.loads(body).get("message") or exc.reason)
        except (ValueError, AttributeError):
            return str(body)[:300]
    return str(getattr(exc, "reason", "") or exc)
