"""The mesh-neutral pieces, in Gateway API terms (GAMMA: routes attached to a Service, no Gateway).

`traffic-split` is an `HTTPRoute` whose parent is the Service and whose weighted `backendRefs` are the
per-version Services (`reviews-v1` ...; `k8s/bookinfo/bookinfo-versions.yaml`). Istio and Linkerd
implement it for east-west traffic; Consul does not (it uses its own ServiceSplitter).
"""

from __future__ import annotations

from .catalogue import PORT
from .manifests import Manifest, owned

API_VERSION = "gateway.networking.k8s.io/v1"


def weighted_route(service: str, namespace: str, weights: dict[str, int], function: str) -> Manifest:
    """An HTTPRoute on `service` sending each version's weight of its requests to `<service>-<version>`."""
    return owned(
        {
            "apiVersion": API_VERSION,
            "kind": "HTTPRoute",
            "metadata": {"name": f"{service}-split", "namespace": namespace},
            "spec": {
                "parentRefs": [{"group": "", "kind": "Service", "name": service, "port": PORT}],
                "rules": [
                    {
                        "backendRefs": [
                            {"name": f"{service}-{version}", "port": PORT, "weight": weight}
                            for version, weight in weights.items()
                        ]
                    }
                ],
            },
        },
        function,
    )
