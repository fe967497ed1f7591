"""The mesh a `meshload run` goes through: the local testbed with a function in force (`--testbed`), or
a mesh in a Kubernetes cluster whose function is applied before the run and removed after (`--mesh`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import terminal
from ..errors import UsageError

if TYPE_CHECKING:  # imported when the command runs, so `meshload --help` stays fast
    from ..coordinator.mesh import InForce, KubernetesMesh
    from ..coordinator.mesh.local import LocalTestbedMesh
    from ..coordinator.run import RunOptions
    from ..results.run_result import RunResult
    from ..scenarios.plan import Plan


def testbed_in_force(function: str, settings: list[str]) -> tuple[LocalTestbedMesh, str]:
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


def cluster_mesh(
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
