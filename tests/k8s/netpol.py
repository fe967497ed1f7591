"""Which connections a set of NetworkPolicies allows, by the Kubernetes rules (networking.k8s.io/v1).

The closest stand-in for a network plugin here: a pod selected by a policy of type Ingress (Egress)
is isolated for that direction and accepts only what some rule of those policies allows; a connection
needs the sender's egress and the receiver's ingress. Rendered policies carry no namespace (Helm sets
it at install), so the caller says which one they are in. Peers: podSelector (the policy's namespace),
namespaceSelector (+ podSelector), ipBlock (addresses outside the cluster's pods).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Endpoint:
    """A pod (namespace and labels) or, with `ip`, an address outside the pods."""

    namespace: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    ip: str | None = None
    namespace_labels: dict[str, str] = field(default_factory=dict)

    def all_namespace_labels(self) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": self.namespace, **self.namespace_labels}


def pod(namespace: str, labels: dict[str, str], **namespace_labels: str) -> Endpoint:
    return Endpoint(namespace=namespace, labels=dict(labels), namespace_labels=namespace_labels)


def address(ip: str) -> Endpoint:
    return Endpoint(ip=ip)


def selector_matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A LabelSelector against labels ({} selects everything)."""
    selector = selector or {}
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def _peer_matches(peer: dict[str, Any], other: Endpoint, policy_namespace: str) -> bool:
    if "ipBlock" in peer:
        if other.ip is None:
            return False
        ip = ipaddress.ip_address(other.ip)
        block = peer["ipBlock"]
        inside = ip in ipaddress.ip_network(block["cidr"])
        return inside and not any(ip in ipaddress.ip_network(cut) for cut in block.get("except", []))
    if other.ip is not None:
        return False
    if "namespaceSelector" in peer:
        if not selector_matches(peer["namespaceSelector"], other.all_namespace_labels()):
            return False
    elif other.namespace != policy_namespace:
        return False
    return selector_matches(peer.get("podSelector"), other.labels)


def _port_matches(rule: dict[str, Any], port: int, protocol: str) -> bool:
    ports = rule.get("ports")
    if not ports:
        return True
    return any(entry.get("port") in (None, port) and entry.get("protocol", "TCP") == protocol for entry in ports)


def _direction_allows(
    policies: list[dict[str, Any]],
    namespace: str,
    direction: str,
    subject: Endpoint,
    other: Endpoint,
    port: int,
    protocol: str,
) -> bool:
    """Whether `subject` may send (Egress) to / receive (Ingress) from `other`."""
    key, peers_key = ("egress", "to") if direction == "Egress" else ("ingress", "from")
    selecting = [
        policy
        for policy in policies
        if subject.namespace == namespace
        and selector_matches(policy["spec"]["podSelector"], subject.labels)
        and direction in policy["spec"].get("policyTypes", ["Ingress"])
    ]
    if not selecting:
        return True  # not isolated in this direction
    for policy in selecting:
        for rule in policy["spec"].get(key) or []:
            peers = rule.get(peers_key)
            if (not peers or any(_peer_matches(peer, other, namespace) for peer in peers)) and _port_matches(
                rule, port, protocol
            ):
                return True
    return False


def allows(
    policies: list[dict[str, Any]],
    source: Endpoint,
    destination: Endpoint,
    port: int,
    protocol: str = "TCP",
    *,
    namespace: str,
) -> bool:
    """Whether a connection from `source` to `destination` on `port` gets through `policies` (all of
    them in `namespace`): the source's egress (if it is a pod) and the destination's ingress (if it is
    a pod)."""
    if source.ip is None and not _direction_allows(policies, namespace, "Egress", source, destination, port, protocol):
        return False
    return destination.ip is not None or _direction_allows(
        policies, namespace, "Ingress", destination, source, port, protocol
    )
