"""Meshes the coordinator drives: the local testbed (`local`) and Istio, Linkerd and Consul in a
Kubernetes cluster (`kubernetes_mesh` over the `istio`, `linkerd` and `consul` modules).

`prometheus` reads the CPU and memory of any of them from a Prometheus server (cAdvisor metrics; the local
testbed exports the same names).

Importing this package does not load the Kubernetes client: `cluster` imports it when a cluster is
first used, so `meshload mesh render` works without it (the `k8s` extra).
"""

from .base import MeshAdapter, MeshBaseline, ResourceSampling, Support, SupportLevel, Unsupported
from .catalogue import FUNCTIONS
from .cluster import Cluster
from .in_force import HttpProbe, InForce, Probe, ProbeOutcome
from .kubernetes_mesh import MESHES, KubernetesMesh, dialect_named
from .manifests import Manifest, Patch, Rendering

__all__ = [
    "Cluster",
    "FUNCTIONS",
    "HttpProbe",
    "InForce",
    "KubernetesMesh",
    "MESHES",
    "Manifest",
    "MeshAdapter",
    "MeshBaseline",
    "Patch",
    "Probe",
    "ProbeOutcome",
    "Rendering",
    "ResourceSampling",
    "Support",
    "SupportLevel",
    "Unsupported",
    "dialect_named",
]
