"""SIGTERM and SIGINT during a real study (local testbed, private Redis, worker processes): the
cells that finished are in study.json, the console says so, the exit code is 143/130, and no process
of the study or its testbed is left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

PLAN = """\
name: interrupted
load_levels: [20]
repetitions: 5
warmup: 0.5s
duration: 2s
settle: 0.2s
functions: [none, sidecar]
"""


def _cells(study_file: Path) -> int:
    try:
        return len(json.loads(study_file.read_text()).get("cells", []))
    except (OSError, ValueError):
        return 0


def _processes_using(text: Path | str) -> list[str]:
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if str(text) in cmdline:
            found.append(f"{process.info['pid']}: {cmdline}")
    return found


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_an_interrupted_study_keeps_the_cells_it_finished_and_exits_128_plus_the_signal(
    tmp_path: Path, signum: int
) -> None:
    plan_path = tmp_path / "plan.yaml"
    plan_path.write_text(PLAN, encoding="utf-8")
    out, state = tmp_path / "out", tmp_path / "testbed"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHLOAD_")} | {"MESHLOAD_TESTBED_DIR": str(state)}
    study = subprocess.Popen(
        [sys.executable, "-m", "meshload", "study", str(plan_path), "--out", str(out), "--no-history"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # the test plays the terminal: Ctrl-C reaches the whole group
    )
    try:
        deadline = time.monotonic() + 180
        while _cells(out / "study.json") < 1:
            assert study.poll() is None, study.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "no cell finished"
            time.sleep(0.2)
        if signum == signal.SIGINT:
            os.killpg(study.pid, signum)
        else:
            os.kill(study.pid, signum)
        _, stderr = study.communicate(timeout=90)
    finally:
        if study.poll() is None:
            study.kill()
            study.communicate()
    name = signal.Signals(signum).name
    assert study.returncode == 128 + signum, stderr[-3000:]
    assert "Traceback" not in stderr
    done = _cells(out / "study.json")
    assert 1 <= done < 10
    assert f"study interrupted ({name}); the {done} cell(s) that finished are in {out / 'study.json'}" in stderr
    document = json.loads((out / "study.json").read_text())
    assert document["complete"] is False
    for cell in document["cells"]:
        assert (out / cell["run_dir"] / "smp.json").is_file()
    time.sleep(1.0)  # the testbed's processes get SIGTERM first, SIGKILL after a grace
    leftovers = _processes_using(state) + _processes_using(out) + _processes_using(f"--id study-{study.pid}-w")
    assert leftovers == [], "the study left processes behind"
