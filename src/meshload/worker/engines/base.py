"""The contract every request engine keeps (after fortio's `Runnable`), written down once.

**What an engine receives**: an `EngineJob` (one worker's share of a plan, the common start instant
on this host's `time.monotonic_ns()` clock, where its records go, and the ids to put in them) and a
`StopSignal`.

**What it must record**: every request it sets out to make ends exactly one way: a response (any
status; planned instant, actual send and completion go to the `IntervalRecorder`, whose histograms
give the corrected and uncorrected latency and the schedule lag) or an error of one of
`results.interval.ERROR_KINDS` (counted, never raised: a bad response, a reset or a refused
connect never stops an engine). Every `interval_s`, and exactly at the warm-up's end
(`worker.intervals.interval_cuts_s`), it cuts an `IntervalRecord` and hands it to `job.sink` on its
own thread; the last record has `final=True` and covers the drain after the last send.

**How it stops**: by itself at the plan's end (no new request after `start + warm-up + duration`,
in-flight ones get up to the request timeout), or early when `StopSignal.request()` is called from
any thread; either way it still cuts its final record, then returns an `EngineOutcome`.

**What it may check first**: an engine with something to load before it can run a share (the Locust
engine imports the locustfile) offers `prepare(share)`, raising `PlanError` with one line when it
cannot run it; the worker calls it before it accepts the share, so nothing is sent.

**Which event loop it needs**: `event_loop` says it: "asyncio" engines (uvloop HTTP/1.1, and engines
on grpcio's or h2's asyncio APIs) run on a fresh asyncio loop (uvloop where installed, see
`asyncio_engine.AsyncioEngine`); "gevent" engines (Locust users) need a gevent-patched process.
gevent and uvloop never share a process, so the picker (`auto.py`) states each engine's loop and
`worker/engine_process.py` runs a gevent engine in a gevent-patched child of the (plain) worker.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Literal, Protocol

from ...results.interval import IntervalRecord
from ...scenarios.schedule import WorkerShare

if TYPE_CHECKING:
    from ..recorder import IntervalRecorder

#: Receives each interval record as soon as it is cut (called on the engine's own thread).
RecordSink = Callable[[IntervalRecord], None]
#: Where records go already encoded (`encode_record`), for a sink that would only encode them again.
EncodedRecordSink = Callable[[bytes], None]

#: The event loop an engine runs on. A worker process runs engines of one kind only.
EventLoop = Literal["asyncio", "gevent"]


@dataclass(frozen=True, kw_only=True)
class EngineJob:
    """What an engine receives: one worker's share of a plan, and where its records go."""

    share: WorkerShare
    start_ns: int  # the common start instant, on this host's `time.monotonic_ns()` clock
    sink: RecordSink
    worker_id: str
    run_id: str = ""
    interval_s: float = 1.0  # one record per interval (and one cut at the warm-up's end)
    clock_offset_ms: float = 0.0  # this host's clock minus the Redis server's, put in every record
    #: Set where `sink` would only encode each record (an engine's child process, to its worker): an
    #: engine that has its records encoded already hands them on here, with nothing decoded on its loop.
    #: Engines that make their records themselves use `sink`.
    encoded_sink: EncodedRecordSink | None = None


@dataclass
class EngineOutcome:
    """What one engine run did, summed over its records."""

    #: Requests the engine set out to make. Open loop: planned instants that came due before the end
    #: (or the stop), whether sent, still waiting for a connection, or never sent. Closed loop:
    #: requests that ended (a response or an error); each client has at most one in flight.
    attempted: int = 0
    sent: int = 0
    completed: int = 0
    missed: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # kinds with a non-zero count
    records: int = 0
    cpu_seconds: float = 0.0
    spin_seconds: float = 0.0  # of cpu_seconds, polling for planned instants too near to sleep for
    elapsed_s: float = 0.0  # start instant to the final record
    connections_opened: int = 0

    @classmethod
    def of(
        cls, recorder: IntervalRecorder, *, attempted: int, records: int, elapsed_s: float, connections_opened: int = 0
    ) -> EngineOutcome:
        """The outcome of a run whose every record was cut by `recorder` (its totals over all cuts)."""
        return cls(
            attempted=attempted,
            sent=recorder.total_sent,
            completed=recorder.total_completed,
            missed=recorder.total_missed,
            errors={kind: n for kind, n in recorder.total_errors.items() if n},
            records=records,
            cpu_seconds=recorder.total_cpu_s,
            spin_seconds=recorder.total_spin_s,
            elapsed_s=elapsed_s,
            connections_opened=connections_opened,
        )


class StopSignal:
    """Tells a running engine to end now. `request()` is safe from any thread (a heartbeat thread,
    a signal handler); an engine hears of it through `on_request`, on its own loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requested = False
        self._wakes: list[Callable[[], object]] = []

    @property
    def requested(self) -> bool:
        return self._requested

    def request(self) -> None:
        """Ask the engine to stop (again: nothing more happens)."""
        with self._lock:
            if self._requested:
                return
            self._requested = True
            wakes = list(self._wakes)
        for wake in wakes:
            wake()

    def on_request(self, wake: Callable[[], object]) -> Callable[[], None]:
        """Call `wake()` at the first request (at once if it came already); returns the undo.

        `wake` runs on the requesting thread, so it must only hand over to the engine's loop
        (`loop.call_soon_threadsafe`, gevent's `hub.loop.run_callback_threadsafe`). The engine calls
        the returned undo before its loop closes."""
        with self._lock:
            requested = self._requested
            if not requested:
                self._wakes.append(wake)
        if requested:
            wake()

        def undo() -> None:
            with self._lock:
                if wake in self._wakes:
                    self._wakes.remove(wake)

        return undo


class Engine(Protocol):
    """A request engine: one class per module under `worker/engines/`, registered in `auto.py`."""

    #: The event loop `run` creates and runs on (see the module docstring).
    event_loop: ClassVar[EventLoop]

    def run(self, job: EngineJob, stop: StopSignal) -> EngineOutcome:
        """Run `job` on a fresh event loop of kind `event_loop` in this thread, until the plan's
        end or `stop`; the records go to `job.sink`, the totals are returned."""
        ...
