"""`meshload trend` end to end: runs made of real histograms recorded in the store (both backends), the
command writing trend.html, and the page opened in a real headless Chromium, read and photographed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tests.support.browser import headless_chromium
from tests.support.synthetic_runs import DAY_MS, START_UNIX_MS, make_plan, synthetic_run

from meshload.history.records import HistoryRecord, record_from_run
from meshload.history.store import open_store
from meshload.results.outputs import write_run_outputs

pytestmark = pytest.mark.timeout(120)

MESHLOAD = [sys.executable, "-c", "from meshload.cli import main; main()"]
RUNS = 14
STEP_RUN = 12  # p50 and p99 rise by 60% from here on
INVALID_RUN = 4


def meshload(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MESHLOAD_")}
    return subprocess.run(
        [*MESHLOAD, *args], cwd=cwd, env=environment, capture_output=True, text=True, check=False, timeout=60
    )


@pytest.fixture(scope="module")
def nightly_runs(tmp_path_factory: pytest.TempPathFactory) -> list[HistoryRecord]:
    """14 nightly runs of one plan with real histograms: steady, one invalid, then a 60% slowdown;
    each run's files written, as `meshload run --out` does."""
    rng = np.random.default_rng(42)
    folder = tmp_path_factory.mktemp("nightly")
    records = []
    for index in range(RUNS):
        level = 1.6 if index >= STEP_RUN else 1.0
        result = synthetic_run(
            rng,
            run_id=f"night-{index:02d}",
            plan=make_plan("nightly", function="sidecar"),
            median_ms=5.0 * level * float(np.exp(rng.normal(0, 0.03))),
            second_effect_sd=0.05,
            started_unix_ms=START_UNIX_MS + index * DAY_MS,
            proxy_cpu_mcores=300.0 * float(np.exp(rng.normal(0, 0.04))),
        )
        if index == INVALID_RUN:
            result.valid = False
            result.validity = ["schedule-lag p99 42 ms is over the 10 ms limit: the generator fell behind"]
        run_dir = folder / result.run_id
        write_run_outputs(result, run_dir)
        records.append(record_from_run(result, str(run_dir)))
    return records


def _trend(records: list[HistoryRecord], store_location: str, out: Path) -> subprocess.CompletedProcess[str]:
    with open_store(store_location) as store:
        store.record(*records)
        # Another plan's run stays out of the trend.
        store.record(HistoryRecord(key="other", kind="run", plan_name="other", plan={}, started_unix_ms=START_UNIX_MS))
    return meshload(
        "trend", "--plan", "nightly", "--store", store_location, "--out", str(out), "--json", cwd=out.parent
    )


def test_trend_marks_the_step_where_it_starts(
    nightly_runs: list[HistoryRecord], store_location: str, tmp_path: Path
) -> None:
    out = tmp_path / "trend.html"

    done = _trend(nightly_runs, store_location, out)

    assert done.returncode == 0, done.stderr
    verdicts = json.loads(done.stdout[: done.stdout.rindex("]") + 1])
    assert [v["run"] for v in verdicts] == [f"night-{index:02d}" for index in range(RUNS)]
    marked = [v["run"] for v in verdicts if v["marked"]]
    assert marked == [f"night-{STEP_RUN:02d}"], marked
    assert set(verdicts[STEP_RUN]["worse"]) >= {"p50_ms", "p99_ms"}
    assert not verdicts[INVALID_RUN]["checks"] and verdicts[INVALID_RUN]["note"].startswith("invalid run")
    assert [bool(v["checks"]) for v in verdicts[:6]] == [False] * 6  # 5 earlier valid runs needed (run 4 invalid)
    assert f"run night-{STEP_RUN:02d} is significantly worse in: p50_ms, p99_ms" in done.stderr
    assert f"trend: {out.resolve()}" in done.stdout
    html = out.read_text(encoding="utf-8")
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing fetched


def test_the_trend_page_in_a_browser(nightly_runs: list[HistoryRecord], tmp_path: Path) -> None:
    out = tmp_path / "trend.html"
    assert _trend(nightly_runs, str(tmp_path / "history.db"), out).returncode == 0

    with headless_chromium() as browser:
        browser.get(out.resolve().as_uri())
        assert browser.title == "meshload trend: nightly"
        rows = browser.find_elements("css selector", "#runs tr[data-run]")
        assert len(rows) == RUNS
        marked_rows = [row.get_attribute("data-run") for row in rows if "marked" in (row.get_attribute("class") or "")]
        assert marked_rows == [f"night-{STEP_RUN:02d}"]
        charts = browser.find_elements("css selector", "svg.chart")
        assert len(charts) == 4  # p50, p99, error rate, proxy CPU
        assert all(chart.size["width"] > 500 and chart.size["height"] > 150 for chart in charts)
        assert len(browser.find_elements("css selector", "svg.chart .point.marked")) == 2
        assert len(browser.find_elements("css selector", "svg.chart .point.invalid")) == 4
        latest = browser.find_element("id", "latest").text
        assert "not significantly worse" in latest  # run 13 is compared with a window holding the step
        findings = browser.find_element("id", "findings").text
        assert f"night-{STEP_RUN:02d}" in findings and "p99 latency (corrected)" in findings
        rule = browser.find_element("css selector", "ol.rule").text
        assert "Student-t" in rule and "1%" in rule
        link = rows[-1].find_element("css selector", "a").get_attribute("href")
        assert link is not None and link.endswith("night-00/report.html")
        screenshot = tmp_path / "trend.png"
        assert browser.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 20_000
    if os.environ.get("MESHLOAD_KEEP_SCREENSHOT"):
        screenshot.replace(Path(os.environ["MESHLOAD_KEEP_SCREENSHOT"]))


def test_trend_refuses_a_mix_of_functions_and_an_unknown_plan(tmp_path: Path) -> None:
    location = str(tmp_path / "h.db")
    with open_store(location) as store:
        for index, function in enumerate(("mtls", "retries")):
            store.record(
                HistoryRecord(
                    key=f"cell-{index}",
                    kind="cell",
                    plan_name="study-quick",
                    plan={},
                    started_unix_ms=START_UNIX_MS + index,
                    labels={"function": function, "load_rps": "50"},
                )
            )
    mixed = meshload("trend", "--plan", "study-quick", "--store", location, cwd=tmp_path)
    assert mixed.returncode == 2
    assert mixed.stderr.strip().splitlines() == [
        "error: the plan's records hold several function values (mtls, retries); pick one with --label function=mtls"
    ]
    picked = meshload("trend", "--plan", "study-quick", "--label", "function=mtls", "--store", location, cwd=tmp_path)
    assert picked.returncode == 0, picked.stderr
    assert (tmp_path / "trend-study-quick.html").is_file()

    unknown = meshload("trend", "--plan", "nope", "--store", location, cwd=tmp_path)
    assert unknown.returncode == 2
    assert "--plan 'nope': no run of this plan" in unknown.stderr and "plans recorded: study-quick" in unknown.stderr
