"""A study's capacity, end to end through the CLI on the real local testbed: no mesh and a rate
limit of known capacity (150 admitted requests per second at productpage's sidecar, 429 above it).
With an error budget of 1%, the rate limit's knee lies within 15% below its limit (its bracket holds
the limit's neighbourhood), and the table in the summary, study.json and index.html says so.

One load level, one repetition, steps of 1 s warm-up + 2 s, a 10% bracket: about a minute on 2 cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

LIMIT_RPS = 150.0
PLAN = """\
name: knee
load_levels: [50]
repetitions: 1
warmup: 1s
duration: 1s
settle: 0.2s
functions:
  - none
  - {name: rate-limit, params: {limit_rps: 150}, baseline: none}
find_max: {slo: "p99<1s", errors: "<1%", precision: 0.1, step: 2s, start: 100, max: 300, repeats: 1}
"""


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_study_finds_each_functions_knee_and_reports_the_capacity_table(tmp_path: Path) -> None:
    plan_path = tmp_path / "knee.yaml"
    plan_path.write_text(PLAN, encoding="utf-8")
    out = tmp_path / "out"
    env = {
        **os.environ,
        "MESHLOAD_TESTBED_DIR": str(tmp_path / "testbed"),
        "COLUMNS": "160",
        "MESHLOAD_STORE": str(tmp_path / "history.db"),
    }
    finished = subprocess.run(
        [sys.executable, "-m", "meshload", "study", str(plan_path), "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=280,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]

    document = json.loads((out / "study.json").read_text())
    capacity = document["capacity"]
    assert (capacity["slo"], capacity["errors"]) == ("p99<1s", "<1%")
    rows = {row["function"]: row for row in capacity["rows"]}
    assert list(rows) == ["none", "rate-limit"]
    limited = rows["rate-limit"]
    # It admits 150 per second and rejects the rest: a rate well above fails the 1% budget, one
    # below passes. The knee lies within 15% under the limit, and the step that failed above it.
    assert LIMIT_RPS * 0.85 <= limited["rate"] <= LIMIT_RPS * 1.02, limited["steps"]
    low, high = limited["bracket"]
    assert low == limited["rate"] and low < high <= low * 1.1 + 1e-9
    assert all(step["rate"] <= low for step in limited["steps"] if step["passed"])
    assert any(step["rate"] > LIMIT_RPS * 1.05 and step["error_fraction"] > 0.01 for step in limited["steps"])
    # Without the mesh the objective is met further: its knee is above the limit (or at the search's
    # bound), and the rate limit's change against it is the ratio of the two knees.
    unlimited = rows["none"]
    assert unlimited["rate"] > limited["rate"], unlimited["steps"]
    assert limited["baseline"] == "none"
    assert limited["change_pct"] == pytest.approx((limited["rate"] / unlimited["rate"] - 1) * 100)
    assert limited["change_pct"] < 0
    # Every step is a run with its files, under the arm's folder, beside the search's find_max.json.
    for row in rows.values():
        folder = out / row["folder"]
        assert json.loads((folder / "find_max.json").read_text())["rate"] == row["rate"]
        assert len(list(folder.glob("step-*/smp.json"))) == len(row["steps"])
    # The latency cells ran too, before the search.
    assert len(document["cells"]) == 2

    html = (out / "index.html").read_text()
    assert 'id="capacity"' in html
    assert f"{limited['rate']:,.0f}" in html and f"{limited['change_pct']:+.1f}%" in html
    # The summary prints the same line study.json keeps.
    assert limited["text"] in finished.stdout + finished.stderr
    assert limited["text"].startswith(f"rate-limit: {limited['rate']:,.0f} req/s [")
