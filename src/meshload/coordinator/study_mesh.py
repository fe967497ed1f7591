"""Switching the mesh between a study's cells: the plan's functions and topologies checked against
the mesh before any cell runs, and each cell's function (in its topology) put in force."""

from __future__ import annotations

from ..errors import PlanError, TestbedError, UsageError
from ..scenarios.study_plan import StudyCell, StudyPlan
from .mesh.base import MeshAdapter


def check_functions(plan: StudyPlan, mesh: MeshAdapter) -> None:
    """Refuse a plan naming a function the mesh cannot apply (or, on the local testbed, a parameter
    it does not take), before any cell runs rather than in the middle of the study."""
    from .mesh.local import LocalTestbedMesh

    offered = mesh.functions()
    if plan.topologies:
        if not isinstance(mesh, LocalTestbedMesh):
            raise PlanError(f"topologies: {mesh.name} has no topologies to switch; remove topologies: from the plan")
        from ..testbed import TOPOLOGIES

        for topology in plan.topologies:
            if topology not in TOPOLOGIES:
                raise PlanError(f"topologies: {topology!r} is not a testbed topology; use {', '.join(TOPOLOGIES)}")
    for function in plan.functions:
        if function.name not in offered:
            raise PlanError(
                f"function {function.name!r} is not offered by {mesh.name}; use one of: {', '.join(offered)}"
            )
        if isinstance(mesh, LocalTestbedMesh):
            from ..testbed import PROFILES, TestbedFailure

            try:
                PROFILES[function.name].resolve(function.params)
            except TestbedFailure as exc:
                raise PlanError(f"functions: {exc}; fix the study plan") from exc
        else:  # a mesh that cannot express the function is a "not supported" cell, a bad parameter an error
            try:
                mesh.support(function.name, dict(function.params))
            except UsageError as exc:
                raise PlanError(f"functions: {exc}; fix the study plan") from exc


def apply_function(mesh: MeshAdapter, cell: StudyCell) -> None:
    """Put the cell's function in force; a mesh that failed half way is restarted and tried once more.

    On a shared machine a local proxy can lose a race for its port while restarting; a clean restart
    of the testbed then gives it new ones. A second failure is the user's to see.
    """
    from .mesh.local import LocalTestbedMesh

    def apply() -> None:
        if isinstance(mesh, LocalTestbedMesh):
            mesh.apply(cell.function.name, dict(cell.function.params), cell.function.topology)
        else:
            mesh.apply(cell.function.name, dict(cell.function.params))

    try:
        apply()
    except TestbedError:
        down = getattr(mesh, "down", None)
        if down is None:
            raise
        down()
        apply()
