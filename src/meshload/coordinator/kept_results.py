"""A finished run's files kept in the run's Redis (`pipeline.results_store`), for `meshload results get`.

`smp.json` is always kept; the run's other files too while all of them together stay small once
compressed (`KEEP_OTHER_FILES_UP_TO_BYTES`): a Redis that refuses writes when full (the chart's runs
`noeviction`) must keep room for the records of the runs still to come. Failing to keep them costs
the run nothing: its files are on disk, and the user reads one warning.
"""

from __future__ import annotations

import json
import logging
import zlib
from pathlib import Path

import redis

from ..pipeline.results_store import keep_results
from ..results.outputs import FORTIO_FILE, HLOG_FILE, REPORT_FILE, SMP_FILE
from ..results.run_result import RunResult
from ..results.smp import smp_document

log = logging.getLogger(__name__)

#: The run's files besides smp.json are kept while they compress to this much all together.
KEEP_OTHER_FILES_UP_TO_BYTES = 1 << 20
#: In this order (the most useful first, when not all fit).
OTHER_FILES = (REPORT_FILE, FORTIO_FILE, HLOG_FILE)


def keep_run_results(client: redis.Redis, result: RunResult, out_dir: Path | None, *, ttl_s: float) -> bool:
    """Keep the run's files (read from `out_dir`; without one, smp.json made from `result`) for
    `ttl_s` seconds; False, with a warning logged, when Redis would not take them."""
    files, left_out = _files_to_keep(result, out_dir)
    try:
        keep_results(
            client, result.run_id, files, ttl_s=ttl_s, valid=result.valid, labels=dict(result.labels), left_out=left_out
        )
    except (redis.exceptions.RedisError, OSError) as exc:
        log.warning(
            "run %s: its results could not be kept in Redis for `meshload results get` (%s); its files are in %s",
            result.run_id,
            exc,
            out_dir if out_dir is not None else "no folder (no --out)",
        )
        return False
    return True


def _files_to_keep(result: RunResult, out_dir: Path | None) -> tuple[dict[str, bytes], dict[str, int]]:
    """({name: content} to keep, {name: size} of the run's files left out)."""
    smp_path = out_dir / SMP_FILE if out_dir is not None else None
    if smp_path is not None and smp_path.is_file():
        files = {SMP_FILE: smp_path.read_bytes()}
    else:
        files = {SMP_FILE: (json.dumps(smp_document(result), indent=2, allow_nan=False) + "\n").encode()}
    left_out: dict[str, int] = {}
    room = KEEP_OTHER_FILES_UP_TO_BYTES
    for name in OTHER_FILES:
        path = out_dir / name if out_dir is not None else None
        if path is None or not path.is_file():
            continue
        content = path.read_bytes()
        compressed = len(zlib.compress(content, 1))
        if compressed <= room:
            files[name] = content
            room -= compressed
        else:
            left_out[name] = len(content)
    return files, left_out
