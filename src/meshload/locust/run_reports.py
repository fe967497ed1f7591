"""A finished Locust test's reports: where they are written (`--meshload-out`, or a temporary folder
for the web UI's links), and the one line the terminal gets."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MeshloadError
from ..results.histogram import percentile_key
from ..results.outputs import write_run_outputs
from ..results.run_result import RunResult
from .options import MeshloadOptions

log = logging.getLogger("meshload.locust")


@dataclass
class FinishedRun:
    """The last test's merged result and where its reports are."""

    run_id: str
    result: RunResult
    folder: Path | None
    files: dict[str, Path] = field(default_factory=dict)
    temporary: bool = False


def write_reports(environment: Any, run_id: str, result: RunResult, options: MeshloadOptions) -> FinishedRun:
    """Write the test's reports to `--meshload-out`, or to a temporary folder when only the web UI
    will show them; a folder that cannot be written is logged and sets the exit code."""
    folder, temporary = options.out_dir, False
    if folder is None and environment.web_ui is not None:
        folder, temporary = Path(tempfile.mkdtemp(prefix=f"meshload-locust-{run_id}-")), True
    files: dict[str, Path] = {}
    if folder is not None:
        try:
            files = write_run_outputs(result, folder)
        except MeshloadError as exc:
            log.error("meshload: %s", exc)
            environment.process_exit_code = 1
    return FinishedRun(run_id, result, folder, files, temporary)


def summary_line(result: RunResult, folder: Path | None) -> str:
    """One line on the terminal for a finished test."""
    corrected = result.corrected.percentiles_ms()
    percentiles = " ".join(f"p{key} {value:.2f}" for key, value in corrected.items())
    verdict = "VALID" if result.valid and not result.degraded else ("DEGRADED" if result.valid else "INVALID")
    reasons = f" ({'; '.join(result.validity)})" if result.validity else ""
    lag = result.lag.percentiles_ms()[percentile_key(99.0)]
    where = f"; reports in {folder}" if folder is not None else ""
    errors = sum(result.errors.values())
    return (
        f"{result.completed:,} responses, {errors:,} errors; corrected ms {percentiles}; "
        f"schedule lag p99 {lag:.2f} ms; {verdict}{reasons}{where}"
    )
