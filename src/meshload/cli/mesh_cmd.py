"""`meshload mesh render|functions`: a real mesh's resources for one function, as YAML (for review and
GitOps), and which functions each mesh can express."""

from __future__ import annotations

import json
from typing import Annotated, Literal

import typer

from . import terminal
from .options import option

#: The meshes (the coordinator's `mesh.MESHES`; a test holds the two together).
MeshName = Literal["istio", "linkerd", "consul"]

mesh_app = typer.Typer(
    name="mesh",
    help="Istio, Linkerd and Consul: each traffic-control function as the mesh's own resources.",
    no_args_is_help=True,
)


@mesh_app.command("render")
def render(
    mesh: Annotated[MeshName, option("--mesh", "-m", env="MESH", help="The mesh.")],
    function: Annotated[
        str, option("--function", "-f", env="MESH_FUNCTION", help="Function (see `meshload mesh functions`).")
    ],
    settings: Annotated[
        list[str] | None,
        option("--set", env="MESH_SETTINGS", help="A function parameter, key=value (repeatable)."),
    ] = None,
    namespace: Annotated[str, option("--namespace", "-n", env="MESH_NAMESPACE", help="BookInfo's namespace.")] = (
        "bookinfo"
    ),
) -> None:
    """Print the function's resources for the mesh as YAML (baseline included; nothing is applied)."""
    from ..coordinator.mesh import Unsupported, dialect_named
    from ..errors import FunctionNotSupported
    from .testbed_cmd import settings_from_pairs

    rendering = dialect_named(mesh).render(function, settings_from_pairs(settings or []), namespace)
    if isinstance(rendering, Unsupported):
        raise FunctionNotSupported(rendering)
    terminal.result(rendering.to_yaml())


@mesh_app.command("functions")
def functions(
    mesh: Annotated[MeshName | None, option("--mesh", "-m", env="MESH", help="One mesh (default: all).")] = None,
    as_json: Annotated[bool, option("--json", env="MESH_JSON", help="Print as JSON on stdout.")] = False,
) -> None:
    """Which functions each mesh supports with the default parameters, and what its baseline contains."""
    from rich.table import Table

    from ..coordinator.mesh import FUNCTIONS, MESHES, dialect_named

    dialects = [dialect_named(name) for name in ([mesh] if mesh else MESHES)]
    support = {d.name: {function: d.support(function) for function in FUNCTIONS} for d in dialects}
    if as_json:
        listing = {
            d.name: {
                "baseline": {"mtls_encrypted": d.baseline.mtls_encrypted, "contains": d.baseline.contains},
                "functions": {f: {"level": str(s.level), "reason": s.reason} for f, s in support[d.name].items()},
            }
            for d in dialects
        }
        terminal.result(json.dumps(listing, indent=2))
        return
    table = Table("function", *(d.name for d in dialects))
    for function in FUNCTIONS:
        cells = []
        for d in dialects:
            answer = support[d.name][function]
            cells.append(str(answer.level) + (f": {answer.reason}" if answer.reason else ""))
        table.add_row(function, *cells)
    terminal.table(table)
    for d in dialects:
        terminal.result(f"{d.name} baseline: {d.baseline.describe()}")


def register(app: typer.Typer) -> None:
    app.add_typer(mesh_app, name="mesh")
