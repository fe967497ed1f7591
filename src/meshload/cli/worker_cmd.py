"""`meshload worker`: a long-lived worker that serves runs from a Redis (what a fleet node runs)."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from .. import terminal
from .options import option


def worker(
    redis_url: Annotated[
        str,
        option(
            "--redis",
            env="REDIS",
            help="Redis URL shared with the coordinator: redis://[:PASSWORD@]HOST:PORT, rediss:// (TLS), unix://PATH.",
        ),
    ],
    worker_id: Annotated[
        str | None,
        option(
            "--id", env="WORKER_ID", help="This worker's id (default: host-pid-random). Must be unique in the fleet."
        ),
    ] = None,
    once: Annotated[bool, option("--once", env="WORKER_ONCE", help="Serve one run, then leave.")] = False,
    idle_timeout: Annotated[
        str | None,
        option(
            "--idle-timeout",
            env="WORKER_IDLE_TIMEOUT",
            help="Leave after this long without an assignment (e.g. 60s, 10m). Default: never.",
        ),
    ] = None,
    verbose: Annotated[bool, option("--verbose", "-v", env="VERBOSE", help="Log every run's progress.")] = False,
) -> None:
    """Register in the fleet, heartbeat, and run the shares the coordinator assigns."""
    from ..scenarios.durations import parse_duration_s
    from ..worker.process import WorkerProcess

    idle_timeout_s = parse_duration_s(idle_timeout, option="--idle-timeout") if idle_timeout is not None else None
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    process = WorkerProcess(redis_url, worker_id=worker_id, once=once, idle_timeout_s=idle_timeout_s)
    if verbose:
        terminal.info(f"worker {process.worker_id} serving runs from Redis")
    process.serve()


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
