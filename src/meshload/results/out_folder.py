"""The output folder, checked before any load is sent: a run or a study whose results could not be
written is refused with one line at the start, never thrown away at the end."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from ..errors import UsageError

__all__ = ["check_out_dir"]


def check_out_dir(out_dir: Path, *, option: str = "--out") -> Path:
    """Prove that `out_dir` can be created (if missing) and written in, leaving nothing behind: the
    folders this check made are removed again, so a run refused later for another reason leaves no
    trace. `UsageError` saying what is wrong and what to do otherwise."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{option} {out_dir}: is a file, not a folder; choose another path")
    made = [folder for folder in (out_dir, *out_dir.parents) if not folder.exists()]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{option} {out_dir}: cannot create the folder ({exc.strerror}); choose another") from exc
    try:
        # A real file, as the reports will be: permissions, a read-only mount and a full disk all show.
        descriptor, probe = tempfile.mkstemp(prefix=".meshload-probe-", dir=out_dir)
        os.close(descriptor)
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(f"{option} {out_dir}: cannot write in the folder ({exc.strerror}); choose another") from exc
    finally:
        for folder in made:  # deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()
    return out_dir
