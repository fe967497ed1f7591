"""Each engine runs in a process of its event loop's kind: gevent and uvloop never share one.

A worker process is a plain one (the asyncio engines run in it, on uvloop). For a share whose engine
runs on gevent (the Locust engine), `prepare_engine` starts a child process that patches itself for
gevent first thing (`python -m meshload.worker.gevent_main`) and has it prepare the share (import the
locustfile): a failure comes back as the child's one line, a `PlanError`, before the worker accepts
the share. A high-rate asyncio share (`wants_engine_process`) runs in a child too
(`python -m meshload.worker.asyncio_main`): the worker's record publisher and heartbeats are Python
on threads (redis-py, about half a millisecond of CPU per delivery), and in the engine's process they
would take the interpreter's lock from the loop that paces the sends, once or more a second. `run`
then hands the child the job; the child runs the engine and sends back each interval record as it is
cut, then the outcome. The parent gives the records to the job's sink (the Redis
publisher, with the worker's heartbeats beside it, on threads the child's load cannot starve) and
passes an early stop on.

The pipes. Parent to child, on the child's stdin: one JSON line with the share, one with the job, then
`stop` if the run is to end early; the end of stdin means the parent is gone, and the child leaves at
once. Child to parent, on a pipe of their own (the child's stdout and stderr are the worker's log,
where Locust and the locustfile print): frames of a 4-byte big-endian length and a msgpack
`[kind, payload]`: `["ready", null]`, `["failed", line]`, `["record", encoded IntervalRecord]`,
`["done", outcome fields]`, or `["error", [kind, line]]` for a `RunError` or `PlanError` of the
engine's run, raised again as such in the parent.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Protocol

import msgspec

from ..errors import InternalError, PlanError, RunError
from ..results.interval import decode_record, encode_record
from ..scenarios.plan import Plan
from ..scenarios.schedule import WorkerShare
from .cores import threads_off_our_cores
from .engines.auto import ENGINES, Registration, load_engine, registration_for
from .engines.base import Engine, EngineJob, EngineOutcome, EventLoop, StopSignal
from .offloaded_recorder import wants_at_high_rate

#: The module a child process of each kind runs (`python -m`).
CHILD_MAIN: dict[EventLoop, str] = {
    "gevent": "meshload.worker.gevent_main",
    "asyncio": "meshload.worker.asyncio_main",
}
#: The environment variable that overrides when an asyncio engine runs in a child: "always" or
#: "never" ("auto" by default: an open loop at `FOLD_PROCESS_MIN_RATE` per worker or more).
ENGINE_PROCESS_ENV = "MESHLOAD_ENGINE_PROCESS"
#: The errors of an engine's run that mean what they say to the user, passed on as such from a child.
_PASSED_ON: dict[str, type[Exception]] = {"RunError": RunError, "PlanError": PlanError}
#: What an engine that runs in a child needs installed, and the extra of meshload that installs it.
CHILD_NEEDS: dict[str, tuple[tuple[str, ...], str]] = {"locust": (("gevent", "locust"), "locust")}
#: The environment variable that names the child's end of the frames pipe.
CHANNEL_FD_ENV = "MESHLOAD_ENGINE_CHANNEL_FD"
#: How long a child may take to start and prepare its share: within the time a coordinator gives a
#: worker to answer its assignment (`coordinator.assignment.ANSWER_TIMEOUT_S`, 15 s).
PREPARE_TIMEOUT_S = 12.0
#: Beyond the plan's end and its request timeout, how long a child may take to send its outcome.
FINISH_GRACE_S = 30.0
#: How long a child gets to leave after its stdin is closed before it is killed.
CLOSE_TIMEOUT_S = 10.0
#: The exit code of a child whose parent is gone (as a worker's whose coordinator is gone).
PARENT_GONE_EXIT_CODE = 3
_LENGTH = 4


class EngineHandle(Protocol):
    """An engine ready to run one job: in this process, or in a child of its kind."""

    def run(self, job: EngineJob, stop: StopSignal) -> EngineOutcome: ...

    def close(self) -> None: ...


def current_event_loop() -> EventLoop:
    """The kind of this process: "gevent" once gevent has patched it, else "asyncio"."""
    monkey = sys.modules.get("gevent.monkey")
    return "gevent" if monkey is not None and monkey.is_module_patched("socket") else "asyncio"


def prepare_engine(share: WorkerShare) -> EngineHandle:
    """The engine for `share`, prepared: in this process when it runs on this process's kind of event
    loop, else in a child process of its kind. A share the engine cannot run is a PlanError."""
    registration = registration_for(share.plan)
    if registration.event_loop == current_event_loop() and not wants_engine_process(registration, share):
        engine = load_engine(registration)
        _prepare(engine, share)
        return InProcessEngine(engine)
    return ChildEngine(registration, share)


def wants_engine_process(registration: Registration, share: WorkerShare) -> bool:
    """Whether an asyncio engine should run `share` in a child process, away from the worker's
    threads (`ENGINE_PROCESS_ENV`; by default, an open loop at `FOLD_PROCESS_MIN_RATE` per worker or
    more, where those threads' turns on the interpreter's lock would show in the schedule lag)."""
    return registration.event_loop == "asyncio" and wants_at_high_rate(ENGINE_PROCESS_ENV, share)


def check_before_load(plan: Plan) -> None:
    """Prepare `plan`'s engine here once, as a worker will, and let it go: what a worker would refuse (a
    locustfile that does not import, or has no User class) is a PlanError before anything starts."""
    if plan.locust is not None:  # the other engines have nothing to load
        prepare_engine(WorkerShare(plan)).close()


def _prepare(engine: Engine, share: WorkerShare) -> None:
    # Optional in the contract: an engine with something to load or check before it accepts a share.
    prepare = getattr(engine, "prepare", None)
    if prepare is not None:
        prepare(share)


class InProcessEngine:
    """An engine that runs in this process, in the calling thread."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def run(self, job: EngineJob, stop: StopSignal) -> EngineOutcome:
        return self.engine.run(job, stop)

    def close(self) -> None:
        pass


class ChildEngine:
    """An engine in a child process of its event loop's kind (see the module docstring)."""

    def __init__(self, registration: Registration, share: WorkerShare) -> None:
        self.registration = registration
        main = CHILD_MAIN.get(registration.event_loop)
        if main is None:
            raise InternalError(f"no child process runs {registration.event_loop} engines ({registration.name})")
        modules, extra = CHILD_NEEDS.get(registration.name, ((), ""))
        missing = [module for module in modules if importlib.util.find_spec(module) is None]
        if missing:
            raise PlanError(
                f"the {registration.name} engine needs {' and '.join(missing)}, which this Python lacks; "
                f"install them with pip install 'meshload[{extra}]'"
            )
        read_fd, write_fd = os.pipe()
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", main],
                stdin=subprocess.PIPE,
                pass_fds=(write_fd,),
                env={**os.environ, CHANNEL_FD_ENV: str(write_fd)},
            )
        except OSError:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        self._frames = read_fd
        self._lock = threading.Lock()
        self._closed = False
        try:
            self._send(
                {
                    "engine": registration.name,
                    "plan": share.plan.model_dump_json(),
                    "index": share.index,
                    "count": share.count,
                }
            )
            kind, payload = self._receive(time.monotonic() + PREPARE_TIMEOUT_S)
        except BaseException:
            self.close()
            raise
        if kind != "ready":
            self.close()
            raise PlanError(str(payload) if kind == "failed" else f"the {registration.name} engine did not start")

    def run(self, job: EngineJob, stop: StopSignal) -> EngineOutcome:
        """Run `job` in the child; its records go to `job.sink` from this thread as they come."""
        plan = job.share.plan
        self._send(
            {
                "start_ns": job.start_ns,
                "worker_id": job.worker_id,
                "run_id": job.run_id,
                "interval_s": job.interval_s,
                "clock_offset_ms": job.clock_offset_ms,
            }
        )
        undo = stop.on_request(self._send_stop)
        # An asyncio engine is in a child to be apart from this process's threads: where the worker
        # is pinned, the child keeps its cores and the threads (publisher, heartbeats) go to the others.
        threads_back = threads_off_our_cores() if self.registration.event_loop == "asyncio" else (lambda: None)
        deadline_s = time.monotonic() + (job.start_ns - time.monotonic_ns()) / 1e9
        deadline_s += plan.total_s + plan.timeout_s + FINISH_GRACE_S
        try:
            while True:
                kind, payload = self._receive(deadline_s)
                if kind == "record":
                    if job.encoded_sink is not None:
                        job.encoded_sink(payload)
                    else:
                        job.sink(decode_record(payload))
                elif kind == "done":
                    return EngineOutcome(**payload)
                elif kind == "error" and str(payload[0]) in _PASSED_ON:
                    raise _PASSED_ON[str(payload[0])](str(payload[1]))
                else:
                    raise InternalError(f"the {self.registration.name} engine failed: {payload}")
        finally:
            undo()
            threads_back()
            self.close()

    def close(self) -> None:
        """End the child (closing its stdin is its lifeline's end) and release the pipes."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._process.stdin is not None:
                self._process.stdin.close()
        try:
            self._process.wait(CLOSE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        os.close(self._frames)

    # -- pipes -------------------------------------------------------------------------------------

    def _send(self, message: dict[str, Any] | str) -> None:
        line = (message if isinstance(message, str) else json.dumps(message)) + "\n"
        with self._lock:
            if self._closed or self._process.stdin is None:
                return
            try:
                self._process.stdin.write(line.encode())
                self._process.stdin.flush()
            except BrokenPipeError:
                pass  # the child is gone: `_receive` says how

    def _send_stop(self) -> None:
        self._send("stop")

    def _receive(self, deadline_s: float) -> tuple[str, Any]:
        header = self._read_exactly(_LENGTH, deadline_s)
        kind, payload = msgspec.msgpack.decode(self._read_exactly(int.from_bytes(header, "big"), deadline_s))
        return str(kind), payload

    def _read_exactly(self, size: int, deadline_s: float) -> bytes:
        chunks: list[bytes] = []
        while size:
            remaining_s = deadline_s - time.monotonic()
            if remaining_s <= 0 or not select.select([self._frames], [], [], remaining_s)[0]:
                self._process.kill()
                raise RunError(f"the {self.registration.name} engine's process did not answer in time; it was stopped")
            chunk = os.read(self._frames, size)
            if not chunk:
                code = self._process.wait()
                raise RunError(
                    f"the {self.registration.name} engine's process ended (exit code {code}) before its work was "
                    "done; its last lines are in the worker's log"
                )
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)


# -- the child's side ----------------------------------------------------------------------------


class _FrameWriter:
    """Writes frames to the parent, one frame at a time: cooperative under gevent; in an asyncio
    child, a plain write from the loop's thread (a record's frame is a few KB, which the pipe takes)."""

    def __init__(self, fd: int, gevent: bool) -> None:
        self._fd = fd
        self._gevent = gevent
        if gevent:
            from gevent.lock import Semaphore
            from gevent.os import make_nonblocking

            make_nonblocking(fd)
            self._lock: Any = Semaphore()
        else:
            self._lock = threading.Lock()

    def send(self, kind: str, payload: object) -> None:
        body = msgspec.msgpack.encode([kind, payload])
        frame = memoryview(len(body).to_bytes(_LENGTH, "big") + body)
        if self._gevent:
            from gevent.os import nb_write

            write = nb_write
        else:
            write = os.write
        with self._lock:
            while frame:
                frame = frame[write(self._fd, frame) :]


def serve_child() -> int:
    """The child's life (in a process `gevent_main` patched, or `asyncio_main`): prepare the share,
    run the job, report."""
    on_gevent = current_event_loop() == "gevent"
    # Stops come from the parent, on stdin; a Ctrl-C at the terminal reaches the parent, which passes it on.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    writer = _FrameWriter(int(os.environ.pop(CHANNEL_FD_ENV)), gevent=on_gevent)
    lines = _StdinLines(gevent=on_gevent)
    first = lines.next()
    if first is None:
        return 0
    request = json.loads(first)
    registration = next(r for r in ENGINES if r.name == request["engine"])
    share = WorkerShare(Plan.model_validate_json(request["plan"]), request["index"], request["count"])
    engine = load_engine(registration)
    try:
        _prepare(engine, share)
    except PlanError as exc:
        writer.send("failed", str(exc))
        return 2
    writer.send("ready", None)
    second = lines.next()
    if second is None:
        return 0  # the share was not run (called off, or refused elsewhere)
    fields = json.loads(second)
    job = EngineJob(
        share=share,
        start_ns=int(fields["start_ns"]),
        sink=lambda record: writer.send("record", encode_record(record)),
        encoded_sink=lambda encoded: writer.send("record", encoded),
        worker_id=str(fields["worker_id"]),
        run_id=str(fields["run_id"]),
        interval_s=float(fields["interval_s"]),
        clock_offset_ms=float(fields["clock_offset_ms"]),
    )
    stop = StopSignal()
    ran = threading.Event()
    if on_gevent:
        import gevent

        watcher = gevent.spawn(_watch_parent, lines, stop)
    else:  # a thread blocked in a read, never holding the interpreter's lock the loop needs
        threading.Thread(target=_watch_parent, args=(lines, stop, ran), name="meshload-parent", daemon=True).start()
    try:
        outcome = engine.run(job, stop)
    except (RunError, PlanError) as exc:
        ran.set()
        writer.send("error", [type(exc).__name__, str(exc)])
        return 1
    except Exception as exc:
        ran.set()
        writer.send("failed", f"{type(exc).__name__}: {exc}")
        raise
    ran.set()  # before the parent hears of it and closes our stdin: then this process ends as it should
    writer.send("done", dataclasses.asdict(outcome))
    if on_gevent:
        watcher.kill(block=False)
    return 0


class _StdinLines:
    """The parent's lines on stdin, read cooperatively under gevent (a blocking read would stop every
    user); in an asyncio child, blocking, from the calling thread."""

    def __init__(self, gevent: bool) -> None:
        self._read = os.read
        if gevent:
            from gevent.os import make_nonblocking, nb_read

            make_nonblocking(0)
            self._read = nb_read
        self._buffer = b""
        self._ended = False

    def next(self) -> str | None:
        """The next line; None at the end of stdin."""
        while b"\n" not in self._buffer:
            if self._ended:
                return None
            chunk = self._read(0, 65536)
            self._ended = not chunk
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()


def _watch_parent(lines: _StdinLines, stop: StopSignal, ran: threading.Event | None = None) -> None:
    """During the run: `stop` ends it early; the end of stdin means the parent is gone: leave now
    (unless the run is over, `ran`: the parent closing stdin then only ends the child normally)."""
    while True:
        line = lines.next()
        if line is None:
            if ran is not None and ran.is_set():
                return
            os._exit(PARENT_GONE_EXIT_CODE)
        if line.strip() == "stop":
            stop.request()
