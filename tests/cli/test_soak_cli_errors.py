"""Bad soak and knee options are one line and exit code 2 before any load: a checkpoint that is not a
duration, a search without its objective or with a closed loop, an objective that cannot be read."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.cli.test_cli_errors import meshload_cli

URL = "http://127.0.0.1:9/"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["run", URL, "--rate", "5", "--checkpoint", "often"], "--checkpoint:"),
        (["run", URL, "--rate", "5", "--find-max"], "--find-max: give the objective to meet"),
        (["run", URL, "--rate", "5", "--find-max", "--slo", "fast"], "--slo: 'fast' is not a latency objective"),
        (["run", URL, "--rate", "5", "--find-max", "--slo", "p99<5ms", "--errors", "few"], "--errors: 'few'"),
        (["run", URL, "--concurrency", "4", "--find-max", "--slo", "p99<5ms"], "--find-max: searches open-loop rates"),
        (["run", URL, "--rate", "5", "--find-max", "--slo", "p99<5ms", "--precision", "2"], "--precision: 2"),
    ],
    ids=["checkpoint", "no-slo", "bad-slo", "bad-errors", "closed-loop", "bad-precision"],
)
def test_soak_and_knee_options_are_checked_before_any_load(args: list[str], fragment: str, tmp_path: Path) -> None:
    completed = meshload_cli(*args, cwd=tmp_path)
    assert completed.returncode == 2, completed.stderr
    errors = [line for line in completed.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and fragment in errors[0], completed.stderr
    assert "Traceback" not in completed.stderr
    assert list(tmp_path.iterdir()) == []  # nothing started, nothing written
