"""The plugin's life in one Locust process, driven by Locust's events.

Its part depends on the runner Locust made:

- **local** (no `--master`/`--worker`): records its users' requests and merges the records itself;
- **worker**: records its users' requests and publishes interval records to the run's Redis stream
  (`RecordPublisher`: under gevent's monkey-patching its thread is a greenlet and its Redis client
  cooperative, so Redis latency never blocks a user);
- **master**: connects to Redis (`--meshload-redis`) or starts a private redis-server, as
  `meshload run` does; at every test start it picks a run id, a common start instant (Redis clock)
  and each worker's share of the open-loop schedules, and tells the workers through the parsed
  options Locust sends with every spawn message; it reads the stream, merges, and when the test stops
  waits for every worker's final record and writes the reports.

How each role starts a test's recording is `run_start.py`; the reports of a finished test,
`run_reports.py`.

Locust fires `test_stop` on the master before the workers have stopped when it quits (`-t` in
headless mode), so the master finishes in a greenlet of its own and `quitting` waits for it.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
import time
from typing import Any

import gevent
import redis
from locust import __version__ as locust_version
from locust.runners import LocalRunner, MasterRunner, WorkerRunner

from ..errors import MeshloadError
from ..pipeline import wire
from ..pipeline.publisher import RecordPublisher
from ..results.run_result import RunResult
from ..scenarios.plan import Plan
from ..worker.locust_events import ENGINE_MARK
from .collection import locust_reference
from .options import MeshloadOptions, add_options
from .run_reports import FinishedRun, summary_line, write_reports
from .run_start import RUN_OPTION, RunningTest, run_plan, start_local, start_master, start_worker

log = logging.getLogger("meshload.locust")

#: After a test stops, how long the master waits for every worker's final record.
FINAL_RECORDS_TIMEOUT_S = 15.0
#: Then how long it waits for Locust's own totals to catch up (they travel in Locust's stats reports).
LOCUST_STATS_SETTLE_S = 2.0
#: How long a worker keeps trying to deliver its last records when a test stops.
PUBLISH_CLOSE_TIMEOUT_S = 10.0
#: How long `quitting` waits for the work still going on (finishing a test, delivering records).
QUIT_JOIN_TIMEOUT_S = FINAL_RECORDS_TIMEOUT_S + LOCUST_STATS_SETTLE_S + 10.0
#: Live figures for the web UI are recomputed at most this often.
LIVE_EVERY_S = 1.0


class MeshloadPlugin:
    """The plugin in one Locust process (made at Locust's `init`)."""

    def __init__(self, environment: Any, runner: Any) -> None:
        self.environment = environment
        self.runner = runner
        self.options = MeshloadOptions.read(environment.parsed_options)
        self.test: RunningTest | None = None
        self.finishing = False
        self.last: FinishedRun | None = None
        self.peak_users = 0
        self._background: list[gevent.Greenlet] = []
        self._private_redis: Any = None
        self._client: Any = None
        self.redis_url = ""
        self._live: tuple[float, RunResult] | None = None
        self._warned_no_run = False

    @property
    def role(self) -> str:
        if isinstance(self.runner, MasterRunner):
            return "master"
        if isinstance(self.runner, WorkerRunner):
            return "worker"
        return "local"

    # -- Locust's events ---------------------------------------------------------------------------

    def setup(self) -> None:
        """At `init`: check the options and, on the master, get Redis. Raises MeshloadError."""
        out_dir = self.options.out_dir
        if out_dir is not None and self.role != "worker":
            try:
                out_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise MeshloadError(
                    f"--meshload-out {out_dir}: cannot create the folder ({exc.strerror}); choose another"
                ) from exc
        if self.role == "master":
            self._connect_redis()
        events = self.environment.events
        events.test_start.add_listener(self.on_test_start)
        events.test_stopping.add_listener(self.on_test_stopping)
        events.test_stop.add_listener(self.on_test_stop)
        events.spawning_complete.add_listener(self.on_spawning_complete)
        events.quitting.add_listener(self.on_quitting)

    def on_spawning_complete(self, user_count: int, **_: Any) -> None:
        self.peak_users = max(self.peak_users, int(user_count))

    def on_test_start(self, environment: Any, **_: Any) -> None:
        for greenlet in self._background:
            greenlet.join(QUIT_JOIN_TIMEOUT_S)  # the previous test's reports first
        try:
            options = MeshloadOptions.read(environment.parsed_options)
        except MeshloadError as exc:
            log.error("meshload: %s; this test is not recorded", exc)
            return
        self.peak_users = 0
        self._live = None
        if self.role == "master":
            try:
                self.test = self._start_master(options)
            except (redis.exceptions.RedisError, OSError) as exc:
                error = wire.translate_redis_error(exc, self.redis_url)
                log.error("meshload: %s; this test is not recorded", error)
        elif self.role == "worker":
            self.test = self._start_worker(options)
        else:
            self.test = self._start_local(options)

    def on_test_stopping(self, environment: Any, **_: Any) -> None:
        test = self.test
        if test is None:
            return
        test.stopping_ns = test.stopping_ns or time.monotonic_ns()
        if test.node is not None:
            test.node.stopping(test.stopping_ns)

    def on_test_stop(self, environment: Any, **_: Any) -> None:
        test, self.test = self.test, None
        if test is None:
            return
        stop_ns = test.stopping_ns or time.monotonic_ns()
        self.peak_users = max(self.peak_users, int(getattr(self.runner, "user_count", 0) or 0))
        if self.role == "master":
            self.finishing = True
            self._in_background(self._finish_master, test, stop_ns)
        elif self.role == "worker":
            assert test.node is not None and test.publisher is not None
            test.node.finish(stop_ns)
            self._in_background(self._close_publisher, test.publisher)
        else:
            assert test.node is not None and test.collection is not None
            test.node.finish(stop_ns)  # the final record goes straight into the collection
            self._conclude(test, stop_ns)

    def on_quitting(self, environment: Any, **_: Any) -> None:
        deadline = time.monotonic() + QUIT_JOIN_TIMEOUT_S
        for greenlet in self._background:
            greenlet.join(max(deadline - time.monotonic(), 0.0))
            if not greenlet.dead:
                log.error("meshload: the last test's records were not all delivered or merged in time")
                environment.process_exit_code = 1
        if self._client is not None:
            self._client.close()
        if self._private_redis is not None:
            self._private_redis.stop()
        if self.last is not None and self.last.temporary and self.last.folder is not None:
            shutil.rmtree(self.last.folder, ignore_errors=True)

    # -- master ------------------------------------------------------------------------------------

    def _connect_redis(self) -> None:
        url = self.options.redis_url
        if not url:
            # Imported here: only the master starts a redis-server, with `meshload run`'s own code.
            from ..coordinator.redis_server import PrivateRedis

            self._private_redis = PrivateRedis()
            url = self._private_redis.start()
        self.redis_url = url
        self._client = wire.open_redis(url)

    def _start_master(self, options: MeshloadOptions) -> RunningTest:
        return start_master(self.environment, self.runner, self._client, self.redis_url, options)

    def _finish_master(self, test: RunningTest, stop_ns: int) -> None:
        collection, reader = test.collection, test.reader
        assert collection is not None and reader is not None
        try:
            deadline = time.monotonic() + FINAL_RECORDS_TIMEOUT_S
            while collection.unfinished and time.monotonic() < deadline:
                gevent.sleep(0.1)
            reader.stop()
            for worker_id in sorted(collection.unfinished):
                log.warning("meshload: no final record from %s; counted as lost", worker_id)
                collection.aggregator.mark_lost(worker_id)
            settle = time.monotonic() + LOCUST_STATS_SETTLE_S
            while self.runner.stats.total.num_requests < collection.requests and time.monotonic() < settle:
                gevent.sleep(0.1)
            self._conclude(test, stop_ns)
            with contextlib.suppress(redis.exceptions.RedisError, OSError):
                self._client.delete(*wire.RunKeys(test.run_id).all())  # what is left there is not needed
        finally:
            self.finishing = False

    # -- worker ------------------------------------------------------------------------------------

    def _start_worker(self, options: MeshloadOptions) -> RunningTest | None:
        info = getattr(self.environment.parsed_options, RUN_OPTION, None)
        if not isinstance(info, dict):
            if not self._warned_no_run:
                log.warning("meshload: the master does not run the meshload plugin; this worker records nothing")
                self._warned_no_run = True
            return None
        return start_worker(self.environment, self.runner, options, info)

    @staticmethod
    def _close_publisher(publisher: RecordPublisher) -> None:
        if not publisher.close(PUBLISH_CLOSE_TIMEOUT_S):
            log.error("meshload: %d record(s) could not be delivered to Redis", publisher.pending + publisher.dropped)

    # -- local -------------------------------------------------------------------------------------

    def _start_local(self, options: MeshloadOptions) -> RunningTest:
        return start_local(self.environment, options)

    # -- the result --------------------------------------------------------------------------------

    def live_result(self) -> RunResult | None:
        """The test in progress merged so far (recomputed at most every LIVE_EVERY_S), else the last one."""
        test = self.test
        if test is None or test.collection is None:
            return self.last.result if self.last is not None else None
        now = time.monotonic()
        if self._live is not None and now - self._live[0] < LIVE_EVERY_S:
            return self._live[1]
        collection = test.collection
        users = max(self.peak_users, int(getattr(self.runner, "user_count", 0) or 0))
        plan = self._plan(test.options, collection.elapsed_s(), users)
        result = collection.result(plan, {}, locust_reference(self.runner.stats.total, locust_version))
        self._live = (now, result)
        return result

    def _plan(self, options: MeshloadOptions, elapsed_s: float, users: int = 0) -> Plan:
        return run_plan(self.environment, options, elapsed_s, users)

    def _conclude(self, test: RunningTest, stop_ns: int) -> None:
        """Merge the last figures, write the reports, say what happened."""
        from ..coordinator.environment import describe_environment

        collection = test.collection
        assert collection is not None
        users = max(self.peak_users, 1)
        plan = self._plan(test.options, (stop_ns - test.start_ns) / 1e9, users)
        environment = describe_environment(self._client, test.worker_hosts)
        environment["generator"] = f"locust {locust_version} with the meshload plugin ({self.role} mode)"
        environment["locust_users"] = users
        result = collection.result(plan, environment, locust_reference(self.runner.stats.total, locust_version))
        finished = write_reports(self.environment, test.run_id, result, test.options)
        previous, self.last = self.last, finished
        if previous is not None and previous.temporary and previous.folder is not None:
            shutil.rmtree(previous.folder, ignore_errors=True)
        log.info("meshload: %s", summary_line(result, None if finished.temporary else finished.folder))
        if test.options.strict and (not result.valid or result.degraded):
            self.environment.process_exit_code = 1

    def _in_background(self, function: Any, *args: Any) -> None:
        self._background = [g for g in self._background if not g.dead]
        self._background.append(gevent.spawn(function, *args))


_PLUGIN: list[MeshloadPlugin] = []


def current() -> MeshloadPlugin | None:
    """The plugin of this process, once Locust's `init` has run."""
    return _PLUGIN[-1] if _PLUGIN else None


def on_init(environment: Any, runner: Any = None, web_ui: Any = None, **_: Any) -> None:
    # gevent's loop keeps its idea of "now" from its last turn, and nothing has turned it since before
    # the locustfile (and this package's numpy, pydantic, ...) was imported: timers set from here on
    # (Locust's --run-time among them) would fire early by that import time.
    gevent.get_hub().loop.update_now()
    if runner is None or not isinstance(runner, LocalRunner | MasterRunner | WorkerRunner):
        return
    if getattr(environment, ENGINE_MARK, False):
        return  # a meshload worker runs these users and records them itself
    try:
        plugin = MeshloadPlugin(environment, runner)
        plugin.setup()
    except MeshloadError as exc:
        # Before any load: one line, no traceback, meshload's exit code for it.
        sys.stderr.write(f"meshload: {exc}\n")
        raise SystemExit(exc.exit_code) from None
    _PLUGIN.append(plugin)
    if web_ui is not None:
        from .web_tab import install_tab

        install_tab(web_ui, plugin)


def register(events: Any) -> None:
    """Hook the plugin into Locust's events (done when a locustfile imports `meshload.locust`)."""
    events.init_command_line_parser.add_listener(add_options)
    events.init.add_listener(on_init)
