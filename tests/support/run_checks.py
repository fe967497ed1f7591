"""The checks every run folder must pass, whoever made it (`meshload run`, the Locust plugin): the four
files, the SMP document's contracted parts, an encoded histogram that holds exactly the requests the
document counts, and a folder `meshload report` can rebuild the run from."""

from __future__ import annotations

import json
from pathlib import Path

from hdrh.histogram import HdrHistogram

from meshload.results.outputs import load_run_result

RUN_FILES = {"smp.json", "fortio.json", "histograms.hlog", "report.html"}
SMP_TOP_KEYS = {"config", "result", "mesh_config", "env", "meshload"}
MESHLOAD_KEYS = {
    "requests",
    "sent",
    "status_codes",
    "errors",
    "percentiles_ms",
    "uncorrected_percentiles_ms",
    "histogram",
    "schedule_lag_ms",
    "workers",
    "valid",
    "validity",
    "timeseries",
}
PERCENTILE_KEYS = {"50", "90", "99", "99.9", "99.99"}


def check_run_folder(out: Path) -> dict:
    """Assert what every run folder holds; returns the SMP document."""
    assert {path.name for path in out.iterdir()} >= RUN_FILES
    smp = json.loads((out / "smp.json").read_text())
    assert set(smp) >= SMP_TOP_KEYS
    block = smp["meshload"]
    assert set(block) >= MESHLOAD_KEYS
    for figures in ("percentiles_ms", "uncorrected_percentiles_ms", "schedule_lag_ms"):
        assert set(block[figures]) >= PERCENTILE_KEYS
    decoded = HdrHistogram.decode(block["histogram"])
    assert decoded.get_total_count() == block["requests"]
    if block["requests"]:
        assert decoded.get_value_at_percentile(50) > 0
    for part in ("config", "result", "mesh_config", "env"):
        assert smp[part]["smp_version"] == "v0.6.1"
    assert smp["result"]["test_id"] == smp["config"]["id"]
    rebuilt = load_run_result(out)
    assert rebuilt.completed == block["requests"] and rebuilt.valid == block["valid"]
    fortio = json.loads((out / "fortio.json").read_text())
    assert fortio["DurationHistogram"]["Count"] == block["requests"]
    return smp
