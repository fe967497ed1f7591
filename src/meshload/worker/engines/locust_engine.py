"""The Locust engine: a locustfile's users make the requests, in a meshload worker, on gevent.

It runs in a gevent-patched process only (`event_loop = "gevent"`: `worker/engine_process.py` starts
one for it). `prepare(share)` imports the locustfile: a file that does not import, or holds no User
class, is a `PlanError` of one line before the worker accepts the share. `run(job, stop)` then runs
the users under Locust's own runner (`LocalRunner`: Locust's events, users spread over the classes by
weight, graceful stop) from the common start instant to the plan's end:

- open loop: the share's `max_connections` users take the planned instants of this worker's share of
  the plan's schedule (`TaskPacer`, `rate` tasks per second over all workers); every task, the first
  included, starts at its instant, and its requests are measured from it (corrected), the delay kept
  as schedule lag;
- closed loop: the share's `concurrency` users, each with the locustfile's own wait time (the plan's
  think time when it has one), measured from the actual send.

Every request event is recorded by `NodeRecording` (per request name too) and cut into interval
records on the job's interval. At the end the users finish the task in hand (for up to the plan's
request timeout, then Locust stops them) and the final record covers that drain.
"""

from __future__ import annotations

import logging
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from time import monotonic_ns
from typing import Any, ClassVar

import gevent
import gevent.event
import locust
from locust import constant
from locust.argument_parser import get_parser
from locust.env import Environment
from locust.user.users import LOCUST_STATE_WAITING, User
from locust.util.load_locustfile import load_locustfile

from ...errors import PlanError
from ...scenarios.plan import ClosedLoop, LocustUsers, OpenLoop, Plan
from ...scenarios.schedule import WorkerShare
from ..locust_events import ENGINE_MARK
from ..locust_recording import NodeRecording, Share
from ..task_pacer import PACER_ATTRIBUTE, TASK_ATTRIBUTE, TaskPacer, paced_wait_time, start_task
from .base import EngineJob, EngineOutcome, EventLoop, StopSignal

log = logging.getLogger(__name__)


class LocustEngine:
    """A locustfile's users under Locust's runner, recorded by meshload (see the module docstring)."""

    event_loop: ClassVar[EventLoop] = "gevent"

    def __init__(self) -> None:
        self._user_classes: list[type[User]] = []
        self._parsed_options: Any = None
        self._prepared_for: Plan | None = None

    def prepare(self, share: WorkerShare) -> None:
        """Import the share's locustfile and read Locust's options as its command line would give them
        (PlanError, one line, when either cannot be done)."""
        plan = share.plan
        if plan.locust is None:
            raise PlanError("the Locust engine runs plans with a locustfile; this plan has none")
        if self._prepared_for == plan:
            return
        self._user_classes = _load_user_classes(plan.locust)
        self._parsed_options = _parsed_options(_host(plan))
        self._prepared_for = plan

    def run(self, job: EngineJob, stop: StopSignal) -> EngineOutcome:
        share, plan = job.share, job.share.plan
        self.prepare(share)
        open_loop = isinstance(plan.load, OpenLoop)
        pacer = TaskPacer.for_plan(plan.load, plan.total_s) if isinstance(plan.load, OpenLoop) else None
        _set_pacing(self._user_classes, plan, pacer)
        environment = Environment(
            user_classes=self._user_classes,
            events=locust.events,
            host=_host(plan),
            stop_timeout=plan.timeout_s,
            parsed_options=self._parsed_options,
        )
        setattr(environment, ENGINE_MARK, True)  # the plugin, if the locustfile imports it, stands aside
        runner = environment.create_local_runner()
        environment.events.init.fire(environment=environment, runner=runner, web_ui=None)

        recording = NodeRecording(
            request_event=environment.events.request,
            worker_id=job.worker_id,
            run_id=job.run_id,
            start_ns=job.start_ns,
            schedule_lead_s=0.0,
            sink=job.sink,
            pacers=[pacer] if pacer is not None else [],
            share=Share(share.index, share.count) if open_loop else None,
            warmup_s=plan.warmup_s,
            clock_offset_ms=job.clock_offset_ms,
            seed=plan.seed,
            interval_s=job.interval_s,
        )
        stopped = gevent.event.Event()
        hub = gevent.get_hub()
        undo = stop.on_request(lambda: hub.loop.run_callback_threadsafe(stopped.set))
        try:
            users = plan.max_connections if open_loop else share.concurrency
            stopped.wait(max(job.start_ns - monotonic_ns(), 0) / 1e9)
            recording.start()
            if not stopped.is_set():
                runner.start(users, spawn_rate=max(users, 1))
            end_ns = job.start_ns + round(plan.total_s * 1e9)
            stopped.wait(max(end_ns - monotonic_ns(), 0) / 1e9)
            stop_ns = min(monotonic_ns(), end_ns)
            recording.stopping(stop_ns)
            waiting = _waiting_for_their_instants(runner, stop_ns) if open_loop else []
            runner.stop()  # each user ends its task in hand (up to stop_timeout), then test_stop fires
            # Counted once the users have stopped: Locust stops them from greenlets of its own, so a
            # user whose timer fires first still starts its task, and that one was not missed.
            missed = never_started(waiting)
            if missed:
                recording.recorder.record_missed(missed)
            recording.finish(monotonic_ns())
            runner.quit()
        finally:
            undo()
        recorder = recording.recorder
        return EngineOutcome.of(
            recorder,
            attempted=recorder.total_completed + sum(recorder.total_errors.values()),
            records=recording.records,
            elapsed_s=(monotonic_ns() - job.start_ns) / 1e9,
        )


def _load_user_classes(users: LocustUsers) -> list[type[User]]:
    """The locustfile's User classes, imported from where it was read (its own imports of modules beside
    it work) when that still holds the plan's text, else from the text itself."""
    path = Path(users.path) if users.path else None
    if path is None or not path.is_file() or path.read_text(encoding="utf-8", errors="replace") != users.source:
        folder = Path(tempfile.mkdtemp(prefix="meshload-locustfile-"))
        path = folder / (Path(users.file).stem.replace("-", "_") + ".py")
        path.write_text(users.source, encoding="utf-8")
    try:
        classes, shapes = load_locustfile(str(path))
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the user's code may raise anything at import
        raise PlanError(_import_problem(users, path, exc)) from None
    if not classes:
        raise PlanError(
            f"{users.file}: no User class to run (a subclass of locust's HttpUser, FastHttpUser or User "
            "that is not abstract); define one"
        )
    if shapes:
        log.warning("%s: its LoadTestShape is not used; the plan's load (--rate or --concurrency) is", users.file)
    return [classes[name] for name in sorted(classes)]


def _import_problem(users: LocustUsers, path: Path, exc: BaseException) -> str:
    """One line on why the locustfile did not import: its line, the error, what to do."""
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__) if frame.filename == str(path)]
    where = f"{users.file}:{frames[-1].lineno}" if frames else users.file
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return f"{where}: the locustfile does not import ({detail}); fix it, or install what it imports"


def _set_pacing(user_classes: list[type[User]], plan: Plan, pacer: TaskPacer | None) -> None:
    """Open loop: every task of every user, the first one included, at the pacer's planned instants.
    Closed loop: the plan's think time if it has one; an open-loop wait time of the locustfile's own
    (the plugin's `open_loop`) does not pace here (the plan's load does), so those users do not wait."""
    for user_class in user_classes:
        if pacer is not None:
            user_class.wait_time = paced_wait_time(pacer)
            # The class is this process's own copy of the user's: changed for this one run.
            setattr(user_class, "on_start", _first_task_on_schedule(user_class.on_start))  # noqa: B010
            continue
        assert isinstance(plan.load, ClosedLoop)
        if plan.load.think_time_s > 0:
            user_class.wait_time = constant(plan.load.think_time_s)
        elif hasattr(getattr(user_class, "wait_time", None), PACER_ATTRIBUTE):
            user_class.wait_time = constant(0)


def _first_task_on_schedule(on_start: Callable[[Any], None]) -> Callable[[Any], None]:
    """The user's `on_start`, its requests measured from their send (they are not a planned task), and
    then a wait for the user's first planned instant (Locust runs the first task without a wait). The
    wait is Locust's own (`User.wait`, the paced wait time): a stop ends it at once."""

    def paced_on_start(user: Any) -> None:
        start_task(gevent.getcurrent(), 0)[1] = 0  # lag 0: measured from the send
        on_start(user)
        user.wait()

    return paced_on_start


def _waiting_for_their_instants(runner: Any, stop_ns: int) -> list[list[int]]:
    """The tasks planned before `stop_ns` whose users still sleep towards them (a timer a little late):
    the stop ends them unsent, unless a user wakes before the stop reaches it (`never_started`)."""
    tasks = []
    for greenlet in list(runner.user_greenlets):
        task = getattr(greenlet, TASK_ATTRIBUTE, None)
        user = greenlet.args[0] if greenlet.args else None
        waiting = getattr(user, "_state", None) == LOCUST_STATE_WAITING
        if waiting and isinstance(task, list) and task[1] < 0 and 0 < task[0] < stop_ns:
            tasks.append(task)
    return tasks


def never_started(tasks: list[list[int]]) -> int:
    """How many of `tasks` (`_waiting_for_their_instants`, taken before the stop) have still sent
    nothing now that the users have stopped: those are missed. A task that started has its lag."""
    return sum(1 for task in tasks if task[1] < 0)


def _host(plan: Plan) -> str:
    """The users' host: the plan's one target (without a trailing slash: Locust appends paths to it)."""
    return plan.targets[0].url.rstrip("/")


def _parsed_options(host: str) -> Any:
    """Locust's options as its command line would give them (defaults, and those locustfiles and
    plugins add), for locustfiles that read `environment.parsed_options`; no config file is read, but
    Locust's environment variables (LOCUST_...) are, as by `locust` itself."""
    parser = get_parser(default_config_files=[])
    try:
        return parser.parse_args(["--headless", "--host", host])
    except SystemExit:  # argparse has printed why
        raise PlanError(
            "Locust's options could not be read (a LOCUST_... environment variable Locust refuses?); see above"
        ) from None
