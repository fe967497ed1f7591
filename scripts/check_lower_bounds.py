"""Installs meshload with every runtime dependency at the lowest version pyproject.toml allows, in a
throw-away virtual environment, and runs a quick part of the suite there.

CI's `make test` installs the newest releases; this checks the other end, so a lower bound that does
not really work (an API that came later, a release without wheels for this Python) fails here
instead of on a user's machine.

    python scripts/check_lower_bounds.py [--keep] [pytest arguments...]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: What runs against the lowest versions: the CLI and its errors, the measurement model and reports,
#: plan files, and the engine against real servers (a few seconds each).
QUICK_TESTS = (
    "tests/cli/test_cli_errors.py",
    "tests/results/test_histogram.py",
    "tests/results/test_aggregate.py",
    "tests/results/test_validity.py",
    "tests/results/test_outputs.py",
    "tests/results/test_report_html.py",
    "tests/results/test_smp.py",
    "tests/results/test_fortio.py",
    "tests/results/test_hlog.py",
    "tests/results/test_paired.py",
    "tests/history/test_trend.py",
    "tests/scenarios/test_options.py",
    "tests/scenarios/test_files.py",
    "tests/worker/test_open_loop.py",
    "tests/worker/test_errors.py",
    "tests/worker/test_engine_picker.py",
    "tests/scenarios/test_grpc_and_http2_plans.py",
    "tests/worker/test_grpc_engine.py",
    "tests/worker/test_h2_engine.py",
)
#: Test tools, at their newest: only meshload's own dependencies are held at their floor.
TEST_TOOLS = ("pytest", "pytest-timeout", "h2")  # h2: the HTTP/2 test server
_LOWER_BOUND = re.compile(r"^\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*>=\s*([^,;\s]+)")


def lower_bounds(pyproject: Path) -> list[str]:
    """`name==lowest` for every runtime dependency with a lower bound."""
    dependencies = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    pins = []
    for requirement in dependencies:
        found = _LOWER_BOUND.match(requirement)
        if found is None:
            raise SystemExit(f"{requirement!r} has no lower bound (>=); give it one in pyproject.toml")
        pins.append(f"{found.group(1)}=={found.group(3)}")
    return pins


def run(command: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, cwd=cwd, env=env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the virtual environment (its path is printed)")
    parser.add_argument("--python", default=os.environ.get("PYTHON", sys.executable))
    args, pytest_args = parser.parse_known_args()
    pins = lower_bounds(REPO / "pyproject.toml")
    folder = Path(tempfile.mkdtemp(prefix="meshload-lower-bounds-"))
    try:
        venv = folder / "venv"
        run([args.python, "-m", "venv", str(venv)])
        python = str(venv / "bin" / "python")
        constraints = folder / "constraints.txt"
        constraints.write_text("\n".join(pins) + "\n", encoding="utf-8")
        pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        # Binary wheels only: a floor that needs a compiler on a stock machine is not a floor.
        run([*pip, "--only-binary", ":all:", "--no-binary", "meshload", "-c", str(constraints), str(REPO), *TEST_TOOLS])
        run([python, "-m", "pip", "check"])
        run([python, "-m", "pip", "freeze"])  # what was tested, for the log
        environment = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        run(
            [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *(pytest_args or QUICK_TESTS)],
            cwd=REPO,
            env=environment,
        )
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
