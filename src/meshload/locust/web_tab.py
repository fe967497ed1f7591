"""The meshload tab in Locust's web UI (Locust 2.4x, React UI), and the routes behind it.

The tab is Locust's documented extension (`examples/extend_web_ui.py`): `extended_tabs` and
`extended_tables` in the page's template arguments make a tab with a table, and the table's rows are
added to every `/stats/requests` answer (`extended_stats`), which the UI polls while a test runs.
The rows: exact percentiles p50 … p99.99 merged across all workers (corrected, uncorrected, schedule
lag), Locust's own figures beside them, per request name, per worker, the validity verdict, the
load model and where the reports are.

Locust's tables show text only and stop polling when a test stops, while the reports are written
just after; so a small script (`static/tab.js`, added to Locust's page) shows, on the meshload tab
only, a bar with real links to the last test's reports, kept current from `meshload/live.json`.
Locust's own tabs are left as they are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, jsonify, request, send_from_directory

from ..results.histogram import REPORTED_PERCENTILES, percentile_key
from ..results.outputs import FORTIO_FILE, HLOG_FILE, REPORT_FILE, SMP_FILE
from ..results.report_html import load_model_text
from ..results.run_result import RunResult
from ..scenarios.plan import ClosedLoop

if TYPE_CHECKING:
    from .plugin import MeshloadPlugin

TAB_KEY = "meshload"
REPORT_FILES = (REPORT_FILE, SMP_FILE, FORTIO_FILE, HLOG_FILE)
_STATIC = Path(__file__).parent / "static"
# Column keys without dots ("p999" for p99.9): the UI turns keys into JavaScript names.
_PERCENTILE_COLUMNS = [
    (f"p{percentile_key(p).replace('.', '')}", f"p{percentile_key(p)} ms") for p in REPORTED_PERCENTILES
]
#: The tab's table: a figure, its request count, five percentiles, and a free-text detail.
COLUMNS: list[dict[str, str]] = [
    {"key": "figure", "title": "meshload"},
    {"key": "requests", "title": "# requests"},
    *({"key": key, "title": title} for key, title in _PERCENTILE_COLUMNS),
    {"key": "detail", "title": "detail"},
]


def _row(figure: str, requests: int | str = "", percentiles: dict[str, float] | None = None, detail: str = "") -> dict:
    # No "name" key: the UI's table would sort the rows by it; they are in the order meant to be read.
    requests_text = f"{requests:,}" if isinstance(requests, int) else requests
    row: dict[str, str] = {"figure": figure, "requests": requests_text}
    for (key, _), percentile in zip(_PERCENTILE_COLUMNS, REPORTED_PERCENTILES, strict=True):
        value = percentiles.get(percentile_key(percentile)) if percentiles else None
        row[key] = f"{value:.3f}" if value is not None else ""
    row["detail"] = detail
    return row


def verdict_text(result: RunResult) -> str:
    if not result.valid:
        head = "INVALID: not a measurement of what was planned (the reasons say why)"
    elif result.degraded:
        head = "DEGRADED: valid, but of less load or fewer workers than planned"
    else:
        head = "VALID: the generator kept up"
    return f"{head}; {'; '.join(result.validity)}" if result.validity else head


def tab_rows(result: RunResult | None, *, state: str, reports: str) -> list[dict[str, str]]:
    """The rows of the meshload table for a result (the test in progress, or the last one)."""
    if result is None:
        return [_row("test", detail="none yet: start a test to see meshload's figures")]
    closed = isinstance(result.plan.load, ClosedLoop)
    total = result.completed + sum(result.errors.values()) - result.errors.get("not_sent", 0)
    rows = [
        _row("test", detail=f"{state} · {result.measured_s:.1f} s measured · {result.actual_rps:.1f} responses/s"),
        _row(
            "latency (closed loop, from the actual send)" if closed else "corrected (from the planned instant)",
            total,
            result.corrected.percentiles_ms(),
            f"mean {result.corrected.mean_us() / 1000:.3f} ms · max {result.corrected.max_us / 1000:.3f} ms",
        ),
        _row("uncorrected (from the actual send)", result.uncorrected.total_count, result.uncorrected.percentiles_ms()),
        _row("schedule lag", result.lag.total_count, result.lag.percentiles_ms(), f"{result.late:,} sent late"),
    ]
    if result.reference is not None:
        ref = result.reference
        detail = f"{ref.failures:,} failures · {ref.source}"
        rows.append(_row("Locust's own (rounded)", ref.requests, ref.percentiles_ms, detail))
    for name, summary in result.by_name.items():
        rows.append(
            _row(
                f"name: {name}",
                summary.completed + summary.errors,
                summary.corrected.percentiles_ms(),
                f"{summary.failures:,} failures · uncorrected p99 {summary.uncorrected.percentiles_ms()['99']:.3f} ms",
            )
        )
    for worker in result.workers:
        rows.append(
            _row(
                f"worker {worker.id}",
                worker.requests,
                detail=(
                    f"lag p99 {worker.lag_p99_ms:.2f} ms · busiest CPU {100 * worker.max_cpu_fraction:.0f}% · "
                    f"clock offset {worker.clock_offset_ms:.2f} ms · {'lost' if worker.lost else 'ok'}"
                ),
            )
        )
    rows.append(_row("verdict", detail=verdict_text(result)))
    rows.append(_row("load model", detail=load_model_text(result)))
    rows.append(_row("reports", detail=reports))
    return rows


def status(plugin: MeshloadPlugin, base: str) -> dict[str, Any]:
    """What `live.json` answers: the state and the last test's reports."""
    test = plugin.test
    state = "running" if test is not None else ("finishing" if plugin.finishing else "idle")
    answer: dict[str, Any] = {"state": state, "run_id": test.run_id if test is not None else None, "last": None}
    last = plugin.last
    if last is not None:
        answer["last"] = {
            "run_id": last.run_id,
            "verdict": verdict_text(last.result),
            "valid": last.result.valid and not last.result.degraded,
            "reports": [
                {"title": name, "href": f"{base}/meshload/reports/{name}?run={last.run_id}"}
                for name in REPORT_FILES
                if name in _written(last.files)
            ],
        }
    return answer


def install_tab(web_ui: Any, plugin: MeshloadPlugin) -> None:
    """Add the tab, its rows, the reports' routes and the script to Locust's web UI."""
    options = plugin.environment.parsed_options
    base = (getattr(options, "web_base_path", "") or "").rstrip("/")
    args = web_ui.template_args
    args["extended_tabs"] = [*args.get("extended_tabs", []), {"title": "meshload", "key": TAB_KEY}]
    args["extended_tables"] = [*args.get("extended_tables", []), {"key": TAB_KEY, "structure": COLUMNS}]
    args["extended_csv_files"] = [
        *args.get("extended_csv_files", []),
        {"href": f"{base}/meshload/reports/{REPORT_FILE}", "title": "meshload report of the last test"},
    ]
    blueprint = Blueprint("meshload", __name__, url_prefix=f"{base}/meshload")
    guarded = web_ui.auth_required_if_enabled

    @blueprint.route("/live.json")
    @guarded
    def live() -> Response:
        return jsonify(status(plugin, base))

    @blueprint.route("/reports/<name>")
    @guarded
    def reports(name: str) -> Response | tuple[str, int]:
        last = plugin.last
        if name not in REPORT_FILES or last is None or last.folder is None or name not in _written(last.files):
            return "no such meshload report yet: stop a test first", 404
        return send_from_directory(last.folder, name, max_age=0)

    @blueprint.route("/tab.js")
    def script() -> Response:
        return send_from_directory(_STATIC, "tab.js", mimetype="text/javascript", max_age=0)

    web_ui.app.register_blueprint(blueprint)

    @web_ui.app.after_request
    def extend(response: Response) -> Response:
        if request.path == f"{base}/stats/requests" and response.is_json:
            data = response.get_json()
            state = "running" if plugin.test is not None else "the last test"
            reports = _reports_text(plugin, base)
            data["extended_stats"] = [
                {"key": TAB_KEY, "data": tab_rows(plugin.live_result(), state=state, reports=reports)}
            ]
            response.set_data(json.dumps(data))
        elif request.endpoint == "locust.index" and response.status_code == 200 and response.mimetype == "text/html":
            tag = f'<script src="{base}/meshload/tab.js" defer></script></body>'
            response.set_data(response.get_data(as_text=True).replace("</body>", tag, 1))
        return response


def _written(files: dict[str, Path]) -> set[str]:
    return {path.name for path in files.values()}


def _reports_text(plugin: MeshloadPlugin, base: str) -> str:
    last = plugin.last
    if plugin.test is not None or plugin.finishing:
        return "written when the test stops (links in the bar below)"
    if last is None or not last.files:
        return "none yet"
    return f"{base}/meshload/reports/{REPORT_FILE} (test {last.run_id}; links in the bar below)"
