"""`meshload testbed up|down|status|apply|mode|functions`: the local BookInfo testbed behind HAProxy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from .. import terminal
from .options import option

if TYPE_CHECKING:
    from ..coordinator.mesh.local import LocalTestbedMesh

#: How ratings behaves (the testbed's `topology.RATINGS_MODES`; a test holds the two together).
RatingsMode = Literal["normal", "failing", "faulty", "delayed", "unavailable", "unhealthy"]
#: Where the proxies stand (the testbed's `topology.TOPOLOGIES`; the same test holds them together).
Topology = Literal["sidecar", "per-node", "ingress-only"]

testbed_app = typer.Typer(
    name="testbed",
    help="The local testbed: BookInfo behind HAProxy sidecars, one traffic-control function at a time.",
    no_args_is_help=True,
)

StateDir = Annotated[
    Path | None,
    option("--state-dir", env="TESTBED_DIR", help="State folder (ports, pids, configs, logs).", show_default=False),
]
Settings = Annotated[
    list[str] | None,
    option("--set", env="TESTBED_SETTINGS", help="A function parameter, key=value (repeatable)."),
]
FaultScale = option("--fault-scale", env="TESTBED_FAULT_SCALE", help="Multiplies ratings' fault constants.")
AsJson = option("--json", env="TESTBED_JSON", help="Print as JSON on stdout.")


def _mesh(state_dir: Path | None) -> LocalTestbedMesh:
    # imported here so `meshload --help` does not load the testbed
    from ..coordinator.mesh.local import LocalTestbedMesh

    return LocalTestbedMesh(state_dir)


def settings_from_pairs(pairs: list[str]) -> dict[str, str]:
    """`key=value` settings of a testbed function; a malformed one is a UsageError."""
    from ..errors import UsageError
    from ..testbed import TestbedFailure, parse_settings

    try:
        return parse_settings(pairs)
    except TestbedFailure as exc:
        raise UsageError(str(exc)) from exc


@testbed_app.command("up")
def up(
    function: Annotated[
        str,
        option("--function", "-f", env="TESTBED_FUNCTION", help="Function to put in force (see `functions`)."),
    ] = "sidecar",
    settings: Settings = None,
    ratings_mode: Annotated[
        RatingsMode, option("--ratings-mode", env="TESTBED_RATINGS_MODE", help="How ratings behaves.")
    ] = "normal",
    fault_scale: Annotated[float, FaultScale] = 1.0,
    topology: Annotated[
        Topology | None,
        option(
            "--topology",
            env="TESTBED_TOPOLOGY",
            help="Where the proxies stand (default sidecar); switches a running testbed.",
        ),
    ] = None,
    state_dir: StateDir = None,
) -> None:
    """Start BookInfo, its proxies and the ingress (or switch function and topology if already running)."""
    mesh = _mesh(state_dir)
    mesh.up(
        function,
        settings_from_pairs(settings or []),
        topology=topology,
        app_modes={"ratings": ratings_mode},
        fault_scale=fault_scale,
    )
    terminal.success(f"testbed up with {function} ({mesh.status()['topology']}) at {mesh.ingress_url}/productpage")
    terminal.result(mesh.ingress_url)


@testbed_app.command("down")
def down(state_dir: StateDir = None) -> None:
    """Stop every testbed process (also after the process that started them was killed)."""
    _mesh(state_dir).down()
    terminal.success("testbed down")


@testbed_app.command("apply")
def apply(
    function: Annotated[str, typer.Argument(help="Function to put in force, alone.")],
    settings: Settings = None,
    state_dir: StateDir = None,
) -> None:
    """Put one function in force (parameters override its defaults); applications keep running."""
    mesh = _mesh(state_dir)
    mesh.apply(function, settings_from_pairs(settings or []))
    terminal.success(f"{function} in force at {mesh.ingress_url}")


@testbed_app.command("mode")
def mode(
    service: Annotated[str, typer.Argument(help="Service or instance, e.g. ratings or reviews-v3.")],
    behaviour: Annotated[
        str,
        typer.Argument(help="normal, failing (all 503); ratings also faulty, delayed, unavailable, unhealthy."),
    ],
    fault_scale: Annotated[float | None, FaultScale] = None,
    state_dir: StateDir = None,
) -> None:
    """Set how a BookInfo service behaves (its own faults, not the mesh's)."""
    _mesh(state_dir).set_app_mode(service, behaviour, fault_scale=fault_scale)
    terminal.success(f"{service} is now {behaviour}")


@testbed_app.command("status")
def status(as_json: Annotated[bool, AsJson] = False, state_dir: StateDir = None) -> None:
    """The ingress URL, the function in force, and every process with its ports and pid.

    Exits 1 when the testbed is up but one of its processes has died (each is named on stderr)."""
    report = _mesh(state_dir).status()
    if as_json:
        terminal.result(json.dumps(report, indent=2, sort_keys=True))
    else:
        _print_status(report)
    dead = [f"{p['name']} ({p['kind']}, pid {p['pid']})" for p in report.get("processes") or [] if not p["alive"]]
    if dead:
        from ..errors import TestbedError

        which = f"process {dead[0]} is" if len(dead) == 1 else f"processes {', '.join(dead)} are"
        raise TestbedError(f"testbed {which} dead; restart the testbed with `meshload testbed down` then `up`")


def _print_status(report: dict[str, Any]) -> None:
    if not report.get("processes"):
        terminal.result(f"testbed not running (state folder {report['state_dir']})")
        return
    lines = [
        f"state      {report['state_dir']}",
        f"running    {'yes' if report['running'] else 'NO (some processes died; run `meshload testbed down`)'}",
        f"ingress    {report['ingress_url']}",
        f"function   {report['function']}" + "".join(f" {k}={v}" for k, v in sorted(report["params"].items())),
        f"topology   {report['topology']}",
        f"grpc       {report['grpc']['address']} {report['grpc']['service']}",
        f"metrics    {report.get('metrics_url') or '(none: started by an older meshload)'}"
        "  (cAdvisor names: container_cpu_usage_seconds_total, container_memory_working_set_bytes)",
    ]
    for process in report["processes"]:
        ports = " ".join(f"{name}={port}" for name, port in process["ports"].items())
        state = "" if process["alive"] else "  (dead)"
        lines.append(f"  {process['name']:<24} {process['kind']:<8} pid {process['pid']:<8} {ports}{state}")
    terminal.result("\n".join(lines))


@testbed_app.command("functions")
def functions(as_json: Annotated[bool, AsJson] = False) -> None:
    """The functions the testbed can apply, with their parameters, defaults and topologies."""
    from ..testbed import PROFILES

    if as_json:
        listing = {
            name: {
                "description": p.description,
                "params": {k: {"default": v.default, "help": v.help} for k, v in p.params.items()},
                "topologies": list(p.topologies),
                "topology_notes": p.notes(),
            }
            for name, p in PROFILES.items()
        }
        terminal.result(json.dumps(listing, indent=2))
        return
    lines = []
    for name, profile in PROFILES.items():
        lines.append(f"{name:<18} {profile.description}")
        for key, param in profile.params.items():
            lines.append(f"{'':<20}{key}={param.default!s:<12} {param.help}")
        for topology, note in profile.notes().items():
            lines.append(f"{'':<20}[{topology}] {note}")
    terminal.result("\n".join(lines))


def register(app: typer.Typer) -> None:
    app.add_typer(testbed_app, name="testbed")
