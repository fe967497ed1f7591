"""The one small contract every request engine keeps (after fortio's `Runnable`).

An engine runs one worker's share of a plan from a common start instant and hands its measurements
to a sink, one `IntervalRecord` per interval, the last with `final=True`. It never stops on a bad
response: transport errors are counted by kind (`results.interval.ERROR_KINDS`).
"""

from __future__ import annotations

import asyncio
import errno
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ...results.interval import IntervalRecord
from ...scenarios.schedule import WorkerShare

#: Receives each interval record as soon as it is cut (called on the engine's event loop thread).
RecordSink = Callable[[IntervalRecord], None]


@dataclass
class EngineOutcome:
    """What one engine run did, summed over its records."""

    planned: int = 0  # open loop: instants in the schedule; closed loop: requests started
    sent: int = 0
    completed: int = 0
    missed: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # kinds with a non-zero count
    records: int = 0
    cpu_seconds: float = 0.0
    elapsed_s: float = 0.0  # start instant to the final record
    connections_opened: int = 0


class Engine(Protocol):
    """An engine module exposes `run_share` with this signature."""

    async def __call__(
        self,
        share: WorkerShare,
        *,
        start_ns: int,
        sink: RecordSink,
        worker_id: str,
        run_id: str = "",
        interval_s: float = 1.0,
        clock_offset_ms: float = 0.0,
        stop: asyncio.Event | None = None,
    ) -> EngineOutcome: ...


def connect_error_kind(exc: BaseException) -> str:
    """The error kind of a failed connect or TLS handshake."""
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return "tls_error"
    if isinstance(exc, ConnectionRefusedError):
        return "connect_refused"
    if isinstance(exc, TimeoutError):
        return "connect_timeout"
    if isinstance(exc, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return "reset"
    if isinstance(exc, OSError) and exc.errno == errno.ECONNREFUSED:
        return "connect_refused"
    return "connect_error"
