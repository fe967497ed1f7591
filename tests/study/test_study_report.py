"""study.json and index.html from cells built on real histograms: content, round trip, self-containment."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree

import pytest
from tests.support.study_runs import SHIFTS_MS, synthetic_study

from meshload.results.outputs import write_study_outputs
from meshload.results.study_html import render_study_html
from meshload.results.study_json import load_study
from meshload.results.study_result import StudyResult


@pytest.fixture
def study() -> StudyResult:
    return synthetic_study()


class _Resources(HTMLParser):
    """Every tag and every attribute that could make a browser fetch something."""

    def __init__(self) -> None:
        super().__init__()
        self.fetching: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "srcset", "action", "data", "poster") and value is not None:
                self.fetching.append(f"{tag} {name}={value}")


def test_study_json_holds_every_function_cell_and_comparison(study: StudyResult, tmp_path: Path) -> None:
    written = write_study_outputs(study, tmp_path)
    assert set(written) == {"study.json", "index.html"}
    document = json.loads((tmp_path / "study.json").read_text())
    assert document["kind"] == "meshload-study" and document["complete"] is True
    assert [f["name"] for f in document["functions"]] == list(SHIFTS_MS)
    assert len(document["cells"]) == 4 * 2 * 3
    assert document["environment"]["load_average_after"] == [0.5, 0.4, 0.3]
    assert "wide" in document["interval"]["note"]
    comparisons = document["comparisons"]
    assert {(c["function"], c["baseline"]) for c in comparisons} == {
        ("sidecar", "none"),
        ("mtls", "sidecar"),
        ("retries", "sidecar"),
    }
    assert {c["rate"] for c in comparisons} == {50.0, 100.0}
    for comparison in comparisons:
        assert comparison["low"] <= comparison["change"] <= comparison["high"]
    by_key = {(c["function"], c["rate"], c["metric"]): c for c in comparisons}
    sidecar = by_key["sidecar", 100.0, "p50_ms"]
    assert sidecar["change"] == pytest.approx(1.0, abs=0.15) and sidecar["significant"]
    assert sidecar["relative_change_pct"] == pytest.approx(100 * sidecar["change"] / sidecar["baseline_mean"])
    assert by_key["mtls", 50.0, "p50_ms"]["change"] == pytest.approx(0.5, abs=0.15)
    # `none` has no proxy figures, so the sidecar's CPU cannot be compared; mTLS's can.
    assert ("sidecar", 50.0, "proxy_cpu_mcores_per_krps") not in by_key
    assert by_key["mtls", 50.0, "proxy_cpu_mcores_per_krps"]["change"] > 0

    # The saved study rebuilds the same comparisons (that is what `meshload report` re-renders from).
    again = load_study(tmp_path)
    assert again.plan == study.plan and len(again.cells) == len(study.cells)
    assert [c.__dict__ for c in again.comparisons()] == [c.__dict__ for c in study.comparisons()]


def test_index_html_is_self_contained_with_table_and_plots(study: StudyResult, tmp_path: Path) -> None:
    html = render_study_html(study)
    parser = _Resources()
    parser.feed(html)
    # Nothing is fetched: no scripts, style sheets, images, frames or fonts; links stay in the folder.
    for forbidden in ("script", "link", "img", "iframe", "object", "embed"):
        assert forbidden not in parser.tags
    for reference in parser.fetching:
        assert reference.startswith("a href=runs/"), reference
    assert not re.search(r"url\(|@import|https?://(?!www\.w3\.org/2000/svg)", html)
    # The plots are inline SVG that parses as XML: spectrum per load level, 2 overhead plots, CPU.
    svgs = re.findall(r"<svg.*?</svg>", html, flags=re.S)
    assert len(svgs) == 2 + 2 + 1
    for svg in svgs:
        ElementTree.fromstring(svg)
    spectrum = svgs[0]
    assert spectrum.count("<polyline") == len(SHIFTS_MS)
    assert "Latency percentile spectrum at 50 rps" in spectrum
    # Overhead bars: 3 comparisons x 2 load levels, each with a whisker.
    assert svgs[2].count("<rect") - svgs[2].count('width="10" height="10"') == 3 * 2
    # The table: a row per function and load level with the change and its interval.
    assert html.count('<tr><td class="name"><span class="swatch"') == 3 * 2
    assert re.search(r"\+1\.\d+ \[\d\.\d+, \d\.\d+\]", html)
    assert 'class="sig"' in html
    assert "runs/000-" in html
    # The environment, nested values included.
    assert "meshload 0.1.0" in html and "0.1, 0.2, 0.3" in html


def test_an_incomplete_study_with_an_invalid_cell_says_so(study: StudyResult, tmp_path: Path) -> None:
    study.cells = study.cells[:10]
    study.cells[0].valid = False
    study.cells[0].validity = ["the generator fell behind"]
    write_study_outputs(study, tmp_path)
    html = (tmp_path / "index.html").read_text()
    assert "This study is incomplete: 10 of 24 cells ran." in html
    assert "the generator fell behind" in html
    document = json.loads((tmp_path / "study.json").read_text())
    assert document["complete"] is False
    used = sum(c["n_baseline"] + c["n_function"] for c in document["comparisons"] if c["metric"] == "p50_ms")
    pairs_possible = sum(
        1
        for cell in study.cells[1:]
        for other in study.cells[1:]
        if cell.rate == other.rate and study.plan.baseline_of(cell.function) == other.function
    )
    assert used > 0 and pairs_possible > 0
    assert all(c["function"] != study.cells[0].function or c["n_function"] < 3 for c in document["comparisons"])
