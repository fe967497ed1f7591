"""The plugin's command-line options, added to Locust's parser, and reading them back.

Each option also reads an environment variable, as Locust's own options do. A bad value is one
line naming the option, before any load is sent (`MeshloadOptions.read` raises UsageError).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..scenarios.durations import parse_duration_s


def add_options(parser: Any) -> None:
    """Add the meshload options to Locust's `LocustArgumentParser`."""
    parser.add_argument(
        "--meshload-out",
        metavar="DIR",
        default="",
        env_var="MESHLOAD_OUT",
        help="meshload: write smp.json, fortio.json, histograms.hlog and report.html here when a test stops",
    )
    parser.add_argument(
        "--meshload-redis",
        metavar="URL",
        default="",
        env_var="MESHLOAD_REDIS",
        include_in_web_ui=False,
        help="meshload: Redis the workers publish their records to (default: a private redis-server the "
        "master starts on a Unix socket, reachable by workers on the master's host only)",
    )
    parser.add_argument(
        "--meshload-warmup",
        metavar="DURATION",
        default="0s",
        env_var="MESHLOAD_WARMUP",
        help="meshload: leave the first DURATION of a test (e.g. 10s, the ramp-up) out of the statistics",
    )
    parser.add_argument(
        "--meshload-strict",
        action="store_true",
        default=False,
        env_var="MESHLOAD_STRICT",
        include_in_web_ui=False,
        help="meshload: exit 1 when the last test's measurement is invalid or degraded",
    )


@dataclass(frozen=True)
class MeshloadOptions:
    out_dir: Path | None = None
    redis_url: str = ""
    warmup_s: float = 0.0
    strict: bool = False

    @classmethod
    def read(cls, parsed: argparse.Namespace | None) -> MeshloadOptions:
        """The options as Locust parsed them (the web UI's form may have changed them since)."""
        if parsed is None:
            return cls()
        out = str(getattr(parsed, "meshload_out", "") or "").strip()
        out_dir = Path(out).expanduser() if out else None
        if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
            raise UsageError(f"--meshload-out {out}: this is a file, not a folder; give a folder for the reports")
        warmup = getattr(parsed, "meshload_warmup", "0s") or "0s"
        return cls(
            out_dir=out_dir,
            redis_url=str(getattr(parsed, "meshload_redis", "") or "").strip(),
            warmup_s=parse_duration_s(warmup, option="--meshload-warmup"),
            strict=bool(getattr(parsed, "meshload_strict", False)),
        )
