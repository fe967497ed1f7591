"""Running real Locust (`python -m locust`) with the plugin, as separate processes: headless, master with
workers, `--processes`; each bounded in time, and every process it started stopped after the test."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

LOCUSTFILES = Path(__file__).resolve().parent / "locustfiles"
#: Beyond its --run-time, how long a Locust process may take to start and to finish its reports.
GRACE_S = 45.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class LocustRun:
    """A finished Locust run: its exit code, its output and the files it wrote."""

    returncode: int
    stderr: str
    out: Path
    stats_prefix: Path

    def smp(self) -> dict:
        return json.loads((self.out / "smp.json").read_text())

    def locust_total(self) -> dict[str, int]:
        """Locust's own totals, from the final statistics it writes with --json-file (its --csv files
        are rewritten once a second and may miss the last requests)."""
        entries = json.loads(Path(f"{self.stats_prefix}.json").read_text())
        return {
            "requests": sum(entry["num_requests"] for entry in entries),
            "failures": sum(entry["num_failures"] for entry in entries),
        }

    def private_redis_folder(self) -> Path | None:
        match = re.search(r"records through unix://(\S+)/redis\.sock", self.stderr)
        return Path(match.group(1)) if match else None


def locust_command(locustfile: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "locust", "-f", str(locustfile), *args]


class LocustLauncher:
    """Starts Locust processes for one test and makes sure none outlives it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.processes: list[subprocess.Popen[str]] = []

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "PYTHONUNBUFFERED": "1", **extra}

    def start_worker(self, locustfile: Path, master_port: int, **env: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            locust_command(locustfile, "--worker", "--master-host", "127.0.0.1", "--master-port", str(master_port)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(**env),
        )
        self.processes.append(process)
        return process

    def run(self, locustfile: Path, *args: str, run_time_s: float, name: str = "run", **env: str) -> LocustRun:
        """Run a headless Locust (local, master or --processes) to its end; the reports go to a folder."""
        out, stats_prefix = self.folder / f"{name}-out", self.folder / name
        command = locust_command(
            locustfile,
            "--headless",
            "-t",
            f"{run_time_s:g}s",
            "--meshload-out",
            str(out),
            "--json-file",
            str(stats_prefix),
            "--only-summary",
            *args,
        )
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=self.env(**env)
        )
        self.processes.append(process)
        try:
            _, stderr = process.communicate(timeout=run_time_s + GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
            raise AssertionError(f"locust did not finish in time:\n{stderr[-3000:]}") from None
        return LocustRun(process.returncode, stderr, out, stats_prefix)

    def stop_all(self) -> list[str]:
        """Stop what is still running; the stderr of every process started (workers' logs)."""
        logs = []
        for process in self.processes:
            if process.poll() is None:
                try:
                    process.wait(timeout=15)  # workers quit by themselves when their master quits
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            logs.append(process.stderr.read() if process.stderr and not process.stderr.closed else "")
            if process.stderr:
                process.stderr.close()
        return logs


@pytest.fixture
def locust_launcher(tmp_path: Path) -> Iterator[LocustLauncher]:
    launcher = LocustLauncher(tmp_path)
    yield launcher
    launcher.stop_all()
