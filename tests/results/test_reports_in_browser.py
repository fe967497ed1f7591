"""Both reports as a reader sees them: report.html and a study's index.html opened from disk in a real
headless Chromium. Every chart is drawn (SVG elements with a size, lines with points, bars), nothing
is fetched, and the page logs no error."""

from __future__ import annotations

from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from tests.support.browser import console_errors, headless_chromium
from tests.support.study_runs import SHIFTS_MS, synthetic_study

from meshload.results.outputs import write_run_outputs, write_study_outputs
from meshload.results.run_result import RunResult

pytestmark = pytest.mark.timeout(120)


def _drawn_charts(browser: WebDriver) -> list[dict[str, int]]:
    """For each chart on the page: its rendered size and how many lines, points and bars it holds."""
    return browser.execute_script(
        """
        return Array.from(document.querySelectorAll('svg.chart')).map(svg => {
            const box = svg.getBoundingClientRect();
            return {
                width: Math.round(box.width),
                height: Math.round(box.height),
                lines: svg.querySelectorAll('polyline').length,
                points: Array.from(svg.querySelectorAll('polyline'))
                    .reduce((n, line) => n + line.points.numberOfItems, 0),
                bars: svg.querySelectorAll('rect.bar').length,
                empty: svg.querySelectorAll('text.empty').length,
            };
        });
        """
    )


def test_both_reports_render_their_charts_in_chromium(finished_result: RunResult, tmp_path: Path) -> None:
    run_page = write_run_outputs(finished_result, tmp_path / "run")["report"]
    study_page = write_study_outputs(synthetic_study(), tmp_path / "study")["index.html"]

    with headless_chromium() as browser:
        browser.get(run_page.as_uri())
        assert "meshload report" in browser.title
        run_charts = _drawn_charts(browser)
        run_errors = console_errors(browser)
        verdict = browser.find_element(By.ID, "validity").text
        browser.save_screenshot(str(tmp_path / "run.png"))

        browser.get(study_page.as_uri())
        assert "meshload study" in browser.title
        study_charts = _drawn_charts(browser)
        study_errors = console_errors(browser)
        browser.save_screenshot(str(tmp_path / "study.png"))
        resources = browser.execute_script("return performance.getEntriesByType('resource').map(entry => entry.name)")

    assert run_errors == [] and study_errors == []
    assert resources == []  # nothing fetched by the study page (and it links only to its run folders)
    assert "VALID RUN" in verdict
    # Run report: spectrum (corrected + uncorrected), rate (completed + sent), latency (p50 + p99),
    # schedule lag (p99 + max).
    assert [c["lines"] for c in run_charts] == [2, 2, 2, 2]
    # Study: a spectrum per load level (a line per function), two overhead charts, proxy CPU, and the
    # schedule lag of every second (a line per cell).
    cells = len(SHIFTS_MS) * 2 * 3
    assert [c["lines"] for c in study_charts] == [len(SHIFTS_MS)] * 2 + [0, 0, 0] + [cells]
    assert [c["bars"] for c in study_charts[2:5]] == [3 * 2, 3 * 2, 3 * 2]  # 3 functions x 2 load levels
    for chart in run_charts + study_charts:
        assert chart["width"] > 300 and chart["height"] > 150 and chart["empty"] == 0, chart
        assert chart["lines"] == 0 or chart["points"] > 2 * chart["lines"]
    assert (tmp_path / "run.png").stat().st_size > 10_000 and (tmp_path / "study.png").stat().st_size > 10_000
