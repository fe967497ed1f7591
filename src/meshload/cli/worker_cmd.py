"""`meshload worker`: a long-lived worker that serves runs from a Redis (what a fleet node runs).

Its operator bounds what it runs: the targets it may send to (`--allow-target`; without one, only
this machine's loopback) and ceilings on its rate, run length and connections. A share outside them
is refused before anything is sent, and the refusal is what the coordinator's user reads.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from .. import terminal
from .options import env_var, option


def worker(
    redis_url: Annotated[
        str,
        option(
            "--redis",
            env="REDIS",
            help="Redis URL shared with the coordinator: redis://[USER:PASSWORD@]HOST:PORT, rediss:// (TLS), "
            f"unix://PATH. With a password, give it in {env_var('REDIS')}: a command line is visible to every user.",
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
    allow_target: Annotated[
        list[str] | None,
        option(
            "--allow-target",
            env="WORKER_ALLOW_TARGETS",
            help="A host name, address or CIDR this worker may send to (repeatable; the variable takes a "
            "comma-separated list). Default: loopback only.",
        ),
    ] = None,
    max_rate: Annotated[
        float | None,
        option(
            "--max-rate",
            env="WORKER_MAX_RATE",
            help="Refuse shares that would send more than this many requests per second from this worker.",
        ),
    ] = None,
    max_duration: Annotated[
        str | None,
        option(
            "--max-duration",
            env="WORKER_MAX_DURATION",
            help="Refuse runs longer than this, warm-up included (e.g. 10m).",
        ),
    ] = None,
    max_connections: Annotated[
        int | None,
        option(
            "--max-connections",
            env="WORKER_MAX_CONNECTIONS",
            help="Refuse shares that would open more connections than this from this worker.",
        ),
    ] = None,
    exit_with_parent: Annotated[
        bool,
        option(
            "--exit-with-parent",
            env="WORKER_EXIT_WITH_PARENT",
            hidden=True,
            help="Leave when stdin, a pipe from the process that started this worker, closes.",
        ),
    ] = False,
    verbose: Annotated[bool, option("--verbose", "-v", env="VERBOSE", help="Log every run's progress.")] = False,
) -> None:
    """Register in the fleet, heartbeat, and run the shares the coordinator assigns."""
    from ..errors import UsageError
    from ..scenarios.durations import parse_duration_s
    from ..worker.admission import WorkerLimits
    from ..worker.process import WorkerProcess

    idle_timeout_s = parse_duration_s(idle_timeout, option="--idle-timeout") if idle_timeout is not None else None
    max_duration_s = parse_duration_s(max_duration, option="--max-duration") if max_duration is not None else None
    for name, value in (("--max-rate", max_rate), ("--max-connections", max_connections)):
        if value is not None and not value > 0:
            raise UsageError(f"{name}: must be greater than 0 (got {value:g})")
    # The variable holds a comma-separated list; typer hands it over as one entry.
    entries = [part for entry in allow_target or [] for part in entry.split(",") if part.strip()]
    try:
        limits = WorkerLimits.from_allowlist(
            entries, max_rate=max_rate, max_duration_s=max_duration_s, max_connections=max_connections
        )
    except ValueError as exc:
        raise UsageError(f"--allow-target: {exc}") from exc
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    process = WorkerProcess(
        redis_url,
        worker_id=worker_id,
        once=once,
        idle_timeout_s=idle_timeout_s,
        limits=limits,
        exit_with_parent=exit_with_parent,
    )
    if verbose:
        terminal.info(f"worker {process.worker_id} serving runs from Redis; targets allowed: {limits.describe()}")
    process.serve()


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
