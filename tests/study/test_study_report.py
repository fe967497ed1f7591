"""study.json and index.html from cells built on real histograms: the paired comparisons, the study's
resolution, its targets and calibration, the schedule lag of every second, round trip, self-containment;
and the statistics wired into a study on synthetic cells with a known effect."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
from tests.support.study_runs import SHIFTS_MS, STALLED_CELL, synthetic_study

from meshload.results.outputs import write_study_outputs
from meshload.results.study_html import render_study_html, worst_lag_second
from meshload.results.study_json import load_study
from meshload.results.study_result import StudyResult
from meshload.results.synthetic_study import MODEL_PROFILES, synthetic_cells
from meshload.scenarios.study_arms import FunctionSpec
from meshload.scenarios.study_plan import StudyPlan


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


def test_study_json_holds_every_function_cell_and_paired_comparison(study: StudyResult, tmp_path: Path) -> None:
    written = write_study_outputs(study, tmp_path)
    assert set(written) == {"study.json", "index.html"}
    document = json.loads((tmp_path / "study.json").read_text())
    assert document["kind"] == "meshload-study" and document["complete"] is True
    assert document["format_version"] == 2 and document["blocks_done"] == document["repetitions"] == 3
    assert [f["name"] for f in document["functions"]] == list(SHIFTS_MS)
    assert len(document["cells"]) == 4 * 2 * 3
    assert document["environment"]["load_average_after"] == [0.5, 0.4, 0.3]
    assert "paired t interval over blocks" in document["interval"]["method"]
    assert "3 blocks per comparison" in document["interval"]["note"]
    comparisons = document["comparisons"]
    assert {(c["function"], c["baseline"]) for c in comparisons} == {
        ("sidecar", "none"),
        ("mtls", "sidecar"),
        ("retries", "sidecar"),
    }
    assert {c["rate"] for c in comparisons} == {50.0, 100.0}
    for c in comparisons:
        assert c["low"] <= c["change"] <= c["high"] and c["n_blocks"] == 3
        assert c["half_width"] == pytest.approx((c["high"] - c["low"]) / 2) == pytest.approx(c["detectable_change"])
        # The change is the mean of the block differences, each function minus baseline in one block.
        assert c["change"] == pytest.approx(np.mean(c["differences"])) and c["repetitions"] == [1, 2, 3]
    by_key = {(c["function"], c["rate"], c["metric"]): c for c in comparisons}
    sidecar = by_key["sidecar", 100.0, "p50_ms"]
    assert sidecar["change"] == pytest.approx(1.0, abs=0.15) and sidecar["significant"]
    assert sidecar["relative_change_pct"] == pytest.approx(100 * sidecar["change"] / sidecar["baseline_mean"])
    assert by_key["mtls", 50.0, "p50_ms"]["change"] == pytest.approx(0.5, abs=0.15)
    # retries adds nothing to the sidecar: not significant, and it says how large a change it rules out.
    retries = by_key["retries", 50.0, "p50_ms"]
    assert not retries["significant"] and retries["low"] < 0 < retries["high"]
    assert retries["rules_out_beyond"] == pytest.approx(max(-retries["low"], retries["high"]))
    # `none` has no proxy figures, so the sidecar's CPU cannot be compared; mTLS's can.
    assert ("sidecar", 50.0, "proxy_cpu_mcores_per_krps") not in by_key
    assert by_key["mtls", 50.0, "proxy_cpu_mcores_per_krps"]["change"] > 0

    # The resolution: per load level and metric, the widest half-width over the functions.
    resolution = {(r["rate"], r["metric"]): r for r in document["resolution"]}
    p50_at_100 = resolution[100.0, "p50_ms"]
    widest = max(
        (c for c in comparisons if c["rate"] == 100.0 and c["metric"] == "p50_ms"), key=lambda c: c["half_width"]
    )
    assert p50_at_100["detectable_change"] == pytest.approx(widest["half_width"])
    assert p50_at_100["detectable_change_80"] > p50_at_100["detectable_change"] and p50_at_100["n_blocks"] == 3
    assert document["targets"] == [] and document["budget"] is None and document["calibration"] is None

    # The unpaired comparison is kept beside, for what pairing gains, and named as such.
    unpaired = document["unpaired_comparisons"]
    assert "no verdict" in unpaired["note"]
    assert {(c["function"], c["rate"], c["metric"]) for c in unpaired["comparisons"]} == set(by_key)

    # The per-second schedule lag of every cell, in wall-clock time, the stall where it happened.
    stalled = document["cells"][STALLED_CELL]["lag_seconds"]
    assert [s["warmup"] for s in stalled[:2]] == [True, False]
    assert max(stalled, key=lambda s: s["lag_p99_ms"])["unix_ms"] == study.cells[STALLED_CELL].started_unix_ms + 3000

    # The saved study rebuilds the same comparisons (that is what `meshload report` re-renders from).
    again = load_study(tmp_path)
    assert again.plan == study.plan and len(again.cells) == len(study.cells) and again.rounds == 3
    assert [c.__dict__ for c in again.comparisons()] == [c.__dict__ for c in study.comparisons()]


def test_index_html_is_self_contained_with_table_resolution_and_plots(study: StudyResult, tmp_path: Path) -> None:
    html = render_study_html(study)
    parser = _Resources()
    parser.feed(html)
    # Nothing is fetched: no scripts, style sheets, images, frames or fonts; links stay in the folder.
    for forbidden in ("script", "link", "img", "iframe", "object", "embed"):
        assert forbidden not in parser.tags
    for reference in parser.fetching:
        assert reference.startswith("a href=runs/"), reference
    assert not re.search(r"url\(|@import|https?://(?!www\.w3\.org/2000/svg)", html)
    # The plots are inline SVG that parses as XML: spectrum per load level, 2 overhead plots, CPU,
    # the schedule lag of every second.
    svgs = re.findall(r"<svg.*?</svg>", html, flags=re.S)
    assert len(svgs) == 2 + 2 + 1 + 1
    for svg in svgs:
        ElementTree.fromstring(svg)
    spectrum = svgs[0]
    assert spectrum.count("<polyline") == len(SHIFTS_MS)
    assert "Latency percentile spectrum at 50 rps" in spectrum
    # Overhead bars: 3 comparisons x 2 load levels, each with its paired interval.
    assert svgs[2].count("<rect") - svgs[2].count('width="10" height="10"') == 3 * 2
    assert "paired 95% interval" in svgs[2]
    # The lag over the study: a line per cell, on a log axis reaching the stall's hundreds of ms.
    assert svgs[5].count("<polyline") == len(study.cells) and ">100<" in svgs[5]
    # The table: a row per function and load level with the paired change and its interval; a change
    # not called significant says how large a change it rules out.
    assert html.count('<tr><td class="name"><span class="swatch"') == 3 * 2
    assert re.search(r"\+1\.\d+ \[\d\.\d+, \d\.\d+\]", html)
    assert 'class="sig"' in html
    assert re.search(r"no significant difference<br>rules out beyond ±0\.\d+", html)
    # No error in any cell (and proxy memory the same in every cell): every block differs by exactly 0,
    # which bounds nothing, and says so: errors of 3 functions and memory of 2 (none has no proxies).
    assert html.count("no difference in any block<br>no spread to bound a change by") == 3 * 2 + 2 * 2
    assert "compared <strong>within blocks</strong>" in html
    # The resolution table: every metric at both load levels.
    resolution = html[html.index('id="resolution"') : html.index("Latency percentile spectrum")]
    # 5 metrics at each level: errors (none anywhere) and proxy memory (the same in every cell) never varied.
    assert resolution.count("<tr><td>") == 2 * 5 and "error rate" not in resolution
    # The cells table names each cell's worst second: the stalled cell's 300 ms at its 4th second.
    assert worst_lag_second(study.cells[STALLED_CELL]) == (4.0, 300.0)
    assert "300 at 4" in html
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
    assert document["complete"] is False and document["blocks_done"] == 1
    # Block 1 ran at both load levels, block 2 only partly at 50 rps: at 100 rps one block per
    # comparison (a change, no interval); at 50 rps two where both cells of block 2 ran.
    at_100 = [c for c in document["comparisons"] if c["rate"] == 100.0]
    assert at_100 and all(c["n_blocks"] == 1 and c["low"] is None for c in at_100)
    ran = {(c.function, c.repetition) for c in study.cells if c.rate == 50.0}
    for c in (c for c in document["comparisons"] if c["rate"] == 50.0):
        both = (c["function"], 2) in ran and (c["baseline"], 2) in ran
        assert c["n_blocks"] == (2 if both else 1)
        # The invalid cell's block is kept only for want of 2 valid blocks, and the change is flagged.
        assert c["uses_invalid_cells"] == (study.cells[0].function in (c["function"], c["baseline"]))
    assert "(no interval: 1 block)" in html


def _plan(functions: tuple[str, ...], *, blocks: int, **fields: object) -> StudyPlan:
    return StudyPlan(
        name="synthetic",
        load_levels=(50.0, 200.0),
        repetitions=blocks,
        duration_s=2.0,
        functions=tuple(FunctionSpec(name=name) for name in functions),
        **fields,
    )


STUDIES = 30


def test_a_known_effect_is_covered_and_no_effect_is_rarely_called_on_synthetic_studies() -> None:
    # The sidecar adds 0.3 ms to every request, mTLS 0.1 ms more, retries nothing; the machine drifts
    # between blocks (0.6 ms at 50 rps, 0.15 ms at 200) and between cells (0.15-0.2 ms), as measured here.
    effects = {"none": 0.0, "sidecar": 0.3, "mtls": 0.4, "retries": 0.3}
    truth = {"sidecar": 0.3, "mtls": 0.1, "retries": 0.0}
    models = {50.0: MODEL_PROFILES["50rps"], 200.0: MODEL_PROFILES["200rps"]}
    plan = _plan(tuple(effects), blocks=6)
    covered = drawn = called_null = nulls = 0
    resolution: dict[float, list[float]] = {50.0: [], 200.0: []}
    for seed in range(STUDIES):
        study = StudyResult(plan, 0, cells=synthetic_cells(effects, blocks=6, models=models, seed=seed))
        for row in study.resolution():
            if row.metric == "p50_ms":
                resolution[row.rate].append(row.detectable_change)
        for c in study.comparisons():
            if c.metric not in ("p50_ms", "p90_ms") or c.low is None or c.high is None:
                continue
            drawn += 1
            covered += c.low <= truth[c.function] <= c.high
            if c.function == "retries":
                nulls += 1
                called_null += c.significant
    assert drawn == STUDIES * 3 * 2 * 2
    assert covered / drawn == pytest.approx(0.95, abs=0.045)
    assert called_null / nulls < 0.1
    # The resolution: at 200 rps (less drift within a block, 4 times the requests per cell) the
    # studies see smaller changes in p50, on average, than at 50 rps.
    assert len(resolution[50.0]) == len(resolution[200.0]) == STUDIES
    assert np.mean(resolution[200.0]) < 0.9 * np.mean(resolution[50.0])


def test_targets_say_which_were_reached_and_how_many_blocks_the_others_need(tmp_path: Path) -> None:
    models = {50.0: MODEL_PROFILES["50rps"], 200.0: MODEL_PROFILES["200rps"]}
    plan = _plan(("none", "sidecar"), blocks=8, budget_s=600.0, target_halfwidth="p50=0.05ms,cpu=200mcores")
    study = StudyResult.start(plan)
    study.cells = synthetic_cells({"none": 0.0, "sidecar": 0.3}, blocks=8, models=models, seed=1)
    p50, cpu = study.targets()
    # p50 within ±50 µs is far beyond 8 blocks of this drift; CPU within ±200 mcores is reached.
    assert not p50.reached and p50.widest_half_width is not None and p50.widest_half_width > 0.05
    assert p50.widest_rate == 50.0 and p50.blocks_needed is not None and p50.blocks_needed > 8
    assert f"about {p50.blocks_needed} blocks would reach it" in p50.why and "budget of 10m0s" in p50.why
    assert cpu.reached and cpu.blocks_needed is not None and cpu.blocks_needed <= 8
    write_study_outputs(study, tmp_path)
    document = json.loads((tmp_path / "study.json").read_text())
    assert [t["reached"] for t in document["targets"]] == [False, True]
    html = (tmp_path / "index.html").read_text()
    targets = html[html.index('id="targets"') : html.index("What each function costs")]
    assert (
        "p50=0.05ms" in targets and '<td class="miss">no</td>' in targets and f"<td>{p50.blocks_needed}</td>" in targets
    )


def test_an_aa_study_reports_its_false_positives_and_coverage(tmp_path: Path) -> None:
    plan = _plan(("none", "sidecar"), blocks=12).as_calibration("sidecar")
    models = {50.0: MODEL_PROFILES["50rps"], 200.0: MODEL_PROFILES["200rps"]}
    study = StudyResult.start(plan)
    study.cells = synthetic_cells({"sidecar-a": 0.0, "sidecar-b": 0.0}, blocks=12, models=models, seed=2)
    calibration = study.calibration()
    assert calibration is not None and (calibration.arm_a, calibration.arm_b) == ("sidecar-a", "sidecar-b")
    assert calibration.sub_study_blocks == 6  # half the blocks, under the 8 a budgeted study runs
    assert calibration.false_positives.total == 2 * 7 and calibration.coverage.total > 0
    write_study_outputs(study, tmp_path)
    document = json.loads((tmp_path / "study.json").read_text())
    entry = document["calibration"]
    assert entry["false_positives"]["total"] == 14 and entry["nominal_false_positive_rate"] == pytest.approx(0.05)
    assert entry["coverage"]["count"] == calibration.coverage.count and entry["sub_study_blocks"] == 6
    assert {(c["function"], c["baseline"]) for c in document["comparisons"]} == {("sidecar-b", "sidecar-a")}
    html = (tmp_path / "index.html").read_text()
    assert 'id="calibration"' in html and "false positives" in html and "6-block sub-studies" in html


def test_a_study_written_before_pairing_reopens_with_paired_comparisons(study: StudyResult, tmp_path: Path) -> None:
    write_study_outputs(study, tmp_path)
    document = json.loads((tmp_path / "study.json").read_text())
    # A format-1 study.json: unpaired comparisons only, cells without per-second lag, no budget.
    old = {key: document[key] for key in ("kind", "name", "started_unix_ms", "ended_unix_ms", "plan", "environment")}
    old |= {"format_version": 1, "repetitions": 3, "comparisons": document["unpaired_comparisons"]["comparisons"]}
    old["cells"] = [{k: v for k, v in cell.items() if k != "lag_seconds"} for cell in document["cells"]]
    for key in ("budget_s", "target_halfwidth", "calibrate"):
        del old["plan"][key]
    (tmp_path / "study.json").write_text(json.dumps(old))
    again = load_study(tmp_path)
    assert again.complete and again.rounds == 3 and again.budget is None
    assert [c.__dict__ for c in again.comparisons()] == [c.__dict__ for c in study.comparisons()]
    assert "no per-second figures" in render_study_html(again)
