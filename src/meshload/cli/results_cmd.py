"""`meshload results get RUN_ID` / `results list`: the runs' files kept in Redis after each run
(`--results-ttl`), fetched from wherever Redis is reachable — from outside a cluster through a
port-forward, for instance, when the coordinator's reports sit on a volume inside it."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from .. import terminal
from ..errors import MeshloadError, UsageError
from .options import env_var, option

results_app = typer.Typer(
    name="results",
    help="Fetch a run's smp.json (and its other files, when they were small) kept in Redis after the run.",
    no_args_is_help=True,
)

RedisOption = Annotated[
    str,
    option(
        "--redis",
        env="REDIS",
        help=f"The Redis the run reported to (with a password, give it in {env_var('REDIS')}).",
        show_default=False,
    ),
]


@results_app.command("get")
def get(
    run_id: Annotated[str, typer.Argument(help="The run's id (`meshload results list` shows them).")],
    redis_url: RedisOption,
    out: Annotated[
        Path | None, option("--out", "-o", env="RESULTS_OUT", help="Folder to write the files to (default: RUN_ID).")
    ] = None,
) -> None:
    """Write the run's kept files (smp.json, and report.html, fortio.json, histograms.hlog when kept)."""
    from ..pipeline import wire
    from ..pipeline.results_store import fetch_results

    with wire.open_redis(redis_url) as client:
        kept = _translated(redis_url, lambda: fetch_results(client, run_id))
    if kept is None:
        raise MeshloadError(
            f"no results of run {run_id!r} in Redis at {wire.redacted(redis_url)} (never kept, or past their "
            "TTL); `meshload results list` shows the kept ones"
        )
    out_dir = out if out is not None else Path(run_id)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, content in sorted(kept.files.items()):
            if Path(name).name != name:  # a file name from Redis never leaves the folder
                raise UsageError(f"run {run_id}: kept file {name!r} is not a plain file name; not written")
            partial = out_dir / f"{name}.part"
            partial.write_bytes(content)
            os.replace(partial, out_dir / name)
    except OSError as exc:
        raise UsageError(f"--out {out_dir}: cannot write there ({exc.strerror}); choose another folder") from exc
    terminal.info(f"run {run_id}: {', '.join(sorted(kept.files))} written to {out_dir}")
    for name, size in sorted(kept.meta.left_out.items()):
        terminal.warning(f"{name} ({size:,} bytes) was too large to keep in Redis; it is in the run's own folder")
    terminal.result(str(out_dir))


@results_app.command("list")
def list_kept(
    redis_url: RedisOption,
    as_json: Annotated[bool, option("--json", env="RESULTS_JSON", help="Print the list as JSON on stdout.")] = False,
) -> None:
    """The runs whose results are kept in Redis, the most recent first."""
    from rich.table import Table

    from ..pipeline import wire
    from ..pipeline.results_store import list_results

    with wire.open_redis(redis_url) as client:
        kept = _translated(redis_url, lambda: list_results(client))
    if as_json:
        terminal.result(json.dumps([_as_dict(meta) for meta in kept], indent=2))
        return
    if not kept:
        terminal.info(f"no results are kept in Redis at {wire.redacted(redis_url)}")
        return
    table = Table("run", "kept at (UTC)", "expires (UTC)", "valid", "files", "labels")
    for meta in kept:
        table.add_row(
            meta.run_id,
            _utc(meta.stored_unix_ms),
            _utc(meta.expires_unix_ms),
            "yes" if meta.valid else "NO",
            ", ".join(sorted(meta.files)),
            " ".join(f"{key}={value}" for key, value in sorted(meta.labels.items())),
        )
    terminal.table(table)


T = TypeVar("T")


def _translated(redis_url: str, fetch: Callable[[], T]) -> T:
    """`fetch()`, with a Redis failure as one line."""
    import redis

    from ..pipeline import wire

    try:
        return fetch()
    except redis.exceptions.NoPermissionError as exc:
        raise UsageError(
            f"Redis at {wire.redacted(redis_url)} refused to show results ({exc}); use a user allowed to read "
            "the meshload:results:* keys (the README's meshload-results user)"
        ) from exc
    except (redis.exceptions.RedisError, OSError) as exc:
        raise wire.translate_redis_error(exc, redis_url) from exc


def _utc(unix_ms: int) -> str:
    return datetime.fromtimestamp(unix_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _as_dict(meta: object) -> dict[str, object]:
    import msgspec

    built: dict[str, object] = msgspec.to_builtins(meta)
    return built


def register(app: typer.Typer) -> None:
    app.add_typer(results_app, name="results")
