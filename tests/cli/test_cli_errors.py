"""The CLI library's own errors as a user meets them from the console script: a bad value, an unknown
option and an unknown command each give one line and exit code 2, never a traceback; `--version`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest

import meshload
from meshload.cli.mesh_cmd import MeshName
from meshload.cli.run_cmd import Arrival, OnWorkerLoss, Placement
from meshload.cli.testbed_cmd import RatingsMode, Topology
from meshload.coordinator import mesh, placement, run
from meshload.scenarios import plan
from meshload.testbed import topology

MESHLOAD = [sys.executable, "-m", "meshload"]


def meshload_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MESHLOAD_")}
    return subprocess.run(
        [*MESHLOAD, *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["run", "http://127.0.0.1:9/", "--rate", "abc"], ["'--rate'", "see `meshload run --help`"]),
        (["run", "http://127.0.0.1:9/", "--rate", "5", "--no-such-option"], ["No such option", "--no-such-option"]),
        (["frobnicate"], ["No such command 'frobnicate'", "see `meshload --help`"]),
        (["testbed", "up", "--ratings-mode", "grumpy"], ["'--ratings-mode'", "'grumpy' is not one of"]),
    ],
    ids=["bad-value", "unknown-option", "unknown-command", "bad-choice"],
)
def test_parse_errors_are_one_line_with_exit_code_2(args: list[str], fragments: list[str], tmp_path: Path) -> None:
    completed = meshload_cli(*args, cwd=tmp_path)
    assert completed.returncode == 2, completed.stderr
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), completed.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in completed.stderr and completed.stdout == ""
    assert list(tmp_path.iterdir()) == []  # nothing started, nothing written


def test_version_prints_the_package_version(tmp_path: Path) -> None:
    completed = meshload_cli("--version", cwd=tmp_path)
    assert completed.returncode == 0
    assert completed.stdout == f"meshload {meshload.__version__}\n"


def test_the_command_lines_choices_are_the_coordinators_and_the_plans() -> None:
    assert get_args(Arrival) == get_args(plan.Arrival)
    assert get_args(OnWorkerLoss) == get_args(run.OnWorkerLoss)
    assert get_args(Placement) == get_args(placement.Placement)
    assert get_args(RatingsMode) == topology.RATINGS_MODES
    assert get_args(Topology) == topology.TOPOLOGIES
    assert get_args(MeshName) == mesh.MESHES


def test_a_bug_keeps_its_traceback_and_fails(tmp_path: Path) -> None:
    """Only user errors become one line: an unexpected exception is a bug and shows where it is."""
    script = (
        "import sys\n"
        "from meshload import cli\n"
        "@cli.app.command('explode')\n"
        "def explode() -> None:\n"
        "    raise ZeroDivisionError('a bug')\n"
        "cli.main(['explode'])\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 1
    assert "Traceback" in completed.stderr and "ZeroDivisionError: a bug" in completed.stderr


def test_a_commands_exit_code_is_the_processs() -> None:
    """`meshload run --strict` ends an invalid run with `typer.Exit(1)`: that code must reach the shell."""
    script = (
        "import typer\n"
        "from meshload import cli\n"
        "@cli.app.command('fail-politely')\n"
        "def fail_politely() -> None:\n"
        "    raise typer.Exit(3)\n"
        "cli.main(['fail-politely'])\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert completed.returncode == 3, completed.stderr


def test_every_option_of_every_command_reads_an_environment_variable_shown_in_help() -> None:
    import typer

    from meshload.cli import app

    def commands(command: object, path: str) -> list[tuple[str, object]]:
        found = [(path, command)]
        for name, sub in getattr(command, "commands", {}).items():
            found += commands(sub, f"{path} {name}")
        return found

    checked = 0
    for path, command in commands(typer.main.get_command(app), "meshload"):
        for param in getattr(command, "params", []):
            if getattr(param, "param_type_name", "") != "option" or param.name in ("help", "version"):
                continue
            assert str(param.envvar).startswith("MESHLOAD_") and param.show_envvar, f"{path} {param.opts}"
            checked += 1
    assert checked >= 40
