"""Reports written during a long run (`--checkpoint 5m`), so that a coordinator that dies leaves the
latest ones on disk, marked partial (`RunResult.partial`); the final reports replace them.

Each file is written beside its place and renamed over it (`write_run_outputs`), so a crash in the
middle of a checkpoint leaves the previous one whole. A checkpoint that cannot be written (a full
disk) is a warning, not the end of the run: the run itself is still being measured.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ..errors import UsageError
from ..results.run_result import RunResult

log = logging.getLogger(__name__)


class Checkpoints:
    """When the next checkpoint is due, and writing it."""

    def __init__(self, out_dir: Path | None, every_s: float) -> None:
        self.out_dir = out_dir
        self.every_s = every_s
        self.written = 0
        self._next_s = time.monotonic() + every_s

    def due(self, now_s: float) -> bool:
        return self.out_dir is not None and self.every_s > 0 and now_s >= self._next_s

    def write(self, result: RunResult) -> None:
        from ..results.outputs import write_run_outputs

        assert self.out_dir is not None
        self._next_s = time.monotonic() + self.every_s
        try:
            write_run_outputs(result, self.out_dir)
        except (OSError, UsageError) as exc:  # UsageError: the folder cannot be made
            log.warning("checkpoint of run %s not written to %s: %s", result.run_id, self.out_dir, exc)
            return
        self.written += 1
