"""`meshload report DIR`: re-render a study's or a run's report from the files in its folder.

A study folder (it has `study.json`) gets its comparisons recomputed and `index.html` rewritten; a run
folder (it has `smp.json`) gets `report.html` rewritten from `smp.json` and `histograms.hlog`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .. import terminal
from ..errors import UsageError
from .options import option

if TYPE_CHECKING:
    from ..results.run_result import RunResult


def report(
    folder: Annotated[
        Path, typer.Argument(help="A study folder (study.json) or a run folder (smp.json).", show_default=False)
    ],
    as_json: Annotated[
        bool,
        option(
            "--json", env="REPORT_JSON", help="Print the study's comparisons (or the run's summary) as JSON on stdout."
        ),
    ] = False,
) -> None:
    """Re-render index.html (study) or report.html (run) from the saved files."""
    from ..results.study_json import STUDY_FILE

    if (folder / STUDY_FILE).is_file():
        _report_study(folder, as_json=as_json)
    elif (folder / "smp.json").is_file():
        _report_run(folder, as_json=as_json)
    else:
        raise UsageError(
            f"{folder}: neither a study folder (no {STUDY_FILE}) nor a run folder (no smp.json); "
            "give the --out folder of `meshload study` or `meshload run`"
        )


def _report_study(folder: Path, *, as_json: bool) -> None:
    from ..results.outputs import write_study_outputs
    from ..results.study_json import load_study, study_document
    from .study_tables import print_study_summary

    try:
        study = load_study(folder)
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{folder / 'study.json'}: not a readable meshload study ({exc}); re-run the study") from exc
    written = write_study_outputs(study, folder)
    if as_json:
        document = study_document(study)
        terminal.result(json.dumps({"name": document["name"], "comparisons": document["comparisons"]}, indent=1))
        return
    print_study_summary(study)
    terminal.result(f"index.html: {written['index.html'].resolve()}")


def _report_run(folder: Path, *, as_json: bool) -> None:
    from ..results.outputs import REPORT_FILE, load_run_result
    from ..results.report_html import render_report

    result = load_run_result(folder)
    path = folder / REPORT_FILE
    path.write_text(render_report(result), encoding="utf-8")
    if as_json:
        terminal.result(json.dumps(_run_summary(result), indent=1))
        return
    from .run_outcome import summary_table

    terminal.result(summary_table(result))
    terminal.result(f"report.html: {path.resolve()}")


def _run_summary(result: RunResult) -> dict[str, object]:
    from ..results.cell_summary import run_metrics

    return {
        "run_id": result.run_id,
        "labels": result.labels,
        "valid": result.valid,
        "validity": result.validity,
        "actual_rps": result.actual_rps,
        "percentiles_ms": result.corrected.percentiles_ms(),
        "metrics": run_metrics(result),
    }


def register(app: typer.Typer) -> None:
    app.command("report")(report)
