"""report.html: self-contained, with the charts, the numbers and the verdict."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from meshload.results.aggregate import RunAggregator
from meshload.results.charts import spectrum_percentiles
from meshload.results.outputs import write_run_outputs
from meshload.results.report_html import render_report
from meshload.results.run_result import RunResult

from .conftest import RUN_ID, make_plan

RESOURCE_ATTRIBUTES = {"src", "href", "srcset", "data", "poster", "action"}


class _Resources(HTMLParser):
    """Collects every attribute that would make a browser fetch something, and every tag."""

    def __init__(self) -> None:
        super().__init__()
        self.references: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.references += [value or "" for name, value in attrs if name in RESOURCE_ATTRIBUTES]


def test_report_is_self_contained_and_shows_the_run(finished_result: RunResult) -> None:
    page = render_report(finished_result)
    parser = _Resources()
    parser.feed(page)

    assert parser.references == []  # no script, stylesheet, image or font to fetch
    assert "@import" not in page and "url(" not in page
    # Only the plan's target URL, and the SVG namespace (a name, never fetched).
    assert not re.search(r"https?://(?!127\.0\.0\.1:9/productpage|www\.w3\.org/2000/svg)", page)
    assert parser.tags.count("svg") == 4
    assert parser.tags.count("script") == 0
    for section in (
        'id="validity"',
        'id="spectrum"',
        'id="rate"',
        'id="latency"',
        'id="lag"',
        'id="workers"',
        'id="mesh"',
        'id="plan"',
    ):
        assert section in page
    # Both curves of the spectrum, and the log percentile axis.
    assert 'data-series="corrected"' in page and 'data-series="uncorrected"' in page
    assert ">p99.9<" in page
    # The numbers: corrected p99 and p99.99, the rate, the outcomes, each worker, the mesh.
    corrected = finished_result.corrected
    assert f"{corrected.value_at_percentile(99) / 1000.0:.3f}" in page
    assert f"{corrected.value_at_percentile(99.99) / 1000.0:.3f}" in page
    assert f"{finished_result.uncorrected.value_at_percentile(50) / 1000.0:.3f}" in page
    assert "300.0" in page and "HTTP 503" in page and "reset" in page
    assert "worker 1,odd" in page and "182.6" in page
    assert "VALID RUN" in page


def test_invalid_run_is_said_first_and_loudly(finished_result: RunResult) -> None:
    finished_result.valid = False
    finished_result.validity = ["the generator fell behind its schedule: <lag> p99 40.0 ms"]
    page = render_report(finished_result)

    verdict = page.index("INVALID RUN")
    assert verdict < page.index('id="spectrum"')
    assert "&lt;lag&gt; p99 40.0 ms" in page  # escaped, never raw markup
    assert 'class="verdict invalid"' in page


def test_spectrum_goes_as_deep_as_the_count_supports() -> None:
    assert max(spectrum_percentiles(1000)) == 99.9
    assert round(max(spectrum_percentiles(10**9)), 6) == 99.999
    assert spectrum_percentiles(10)[0] == 0.0


def test_an_empty_run_still_renders_and_says_why(tmp_path: Path) -> None:
    result = RunAggregator(make_plan(labels={}), RUN_ID).result()
    page = render_report(result)

    assert "INVALID RUN" in page and "no request completed" in page
    assert "No mesh sampler ran" in page and page.count("no data") == 4
    written = write_run_outputs(result, tmp_path)
    assert written["report"].read_text(encoding="utf-8") == page


def test_every_chart_point_lies_inside_its_chart(finished_result: RunResult) -> None:
    page = render_report(finished_result)
    view_box = re.search(r'viewBox="0 0 (\d+) (\d+)"', page)
    assert view_box is not None
    width, height = (int(v) for v in view_box.groups())
    polylines = re.findall(r'<polyline[^>]*points="([^"]+)"', page)

    assert len(polylines) == 8  # spectrum: 2 curves, rate: 2, latency: 2, schedule lag: 2
    for points in polylines:
        for point in points.split():
            x, y = (float(v) for v in point.split(","))
            assert 0 <= x <= width and 0 <= y <= height, point


def test_the_schedule_lag_chart_places_a_stall_in_its_second(finished_result: RunResult) -> None:
    stalled = finished_result.timeseries[2]
    stalled.lag_p99_ms, stalled.lag_max_ms = 250.0, 400.0
    page = render_report(finished_result)
    chart = re.search(r'<div id="lag">(.*?)</div>', page, flags=re.S)
    assert chart is not None and "Schedule lag per second" in chart.group(1)
    lines = dict(re.findall(r'data-series="([^"]+)"[^>]*points="([^"]+)"', chart.group(1)))
    assert set(lines) == {"lag p99", "lag max"}
    points = [tuple(float(v) for v in point.split(",")) for point in lines["lag p99"].split()]
    # The highest point of the p99 line (the smallest y) is the stalled second's, third from the left.
    assert min(range(len(points)), key=lambda index: points[index][1]) == 2
    assert ">100<" in chart.group(1)  # the log axis reaches the stall's hundreds of milliseconds
