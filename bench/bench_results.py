"""What a benchmark measured, kept as `bench/results/<name>.json` when it runs with `--save`.

README.md's performance table is made from these files (`scripts/performance_table.py --write`), so
every figure in it names the command, the commit and the moment it was measured. A run without
`--save` only prints: exploring does not overwrite what the README shows.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO = RESULTS_DIR.parents[1]


def measured_commit() -> str:
    """The commit of the working tree measured, "+changes" when it differs from that commit."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short=10", "HEAD") or "unknown"
    # Saved results are what was measured, not what measured it: re-saving one after another is not a change.
    changed = git("status", "--porcelain", "--untracked-files=no", "--", "src", "bench", ":(exclude)bench/results")
    return f"{commit}+changes" if changed else commit


def reference_loop_ms(iterations: int = 3_000_000) -> float:
    """The CPU time of a fixed pure-Python loop, in ms: how fast this machine was for Python code at
    that moment. A shared virtual machine's speed moves by 2-3x from hour to hour without showing in
    the load average or the steal time, and every absolute figure moves with it."""
    started = time.process_time()
    total = 0
    for i in range(iterations):
        total += i
    return round((time.process_time() - started) * 1000, 1)


def add_save_option(parser: argparse.ArgumentParser) -> None:
    """The `--save` option every benchmark of the README's table takes."""
    parser.add_argument("--save", action="store_true", help="keep the figures in bench/results/ (the README's table)")


#: Read when the benchmark starts (`note_start`): the code it measures is the code it imported then.
_at_start: dict[str, Any] = {}


def note_start() -> None:
    """Note the commit and the machine's speed as the benchmark starts (a run that saves its results
    calls this first; the processes it starts do not)."""
    _at_start.update(commit=measured_commit(), reference_loop_ms=reference_loop_ms())


def save_results(name: str, figures: dict[str, Any], *, directory: Path = RESULTS_DIR) -> Path:
    """Write `figures` as the results of benchmark `name`, with how, when and where they were measured."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    document = {
        "name": name,
        "command": shlex.join(["python", os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]]),
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": _at_start.get("commit") or measured_commit(),
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "reference_loop_ms": [_at_start.get("reference_loop_ms"), reference_loop_ms()],
        "figures": figures,
    }
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    print(f"\nsaved: {os.path.relpath(path)}")
    return path
