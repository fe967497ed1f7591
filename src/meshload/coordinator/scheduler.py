"""`meshload schedule serve`: fires each schedule's meshload command at its due times, one at a time.

- **One at a time**: a command runs as a child process; while it runs, any schedule that falls due
  is not started (that due time is logged as `skipped`, with what was still running), so two loads
  never overlap on the same target.
- **Missed, not replayed**: due times that passed while no server ran (or while this one could not
  act) are logged as one `missed` entry per schedule and gap, with their count; the schedule then
  goes on from its next due time, never in a burst.
- **Recorded**: each firing's start, end, exit code, output folder and log file go into the store
  (`firings`). A `run` or `study` without `--out` gets `<runs dir>/<schedule>/<due time>`; the
  command's output goes to a `.log` file beside it; the child records its run in the same store.
- **Clean stop**: on SIGTERM or SIGINT the server stops the running command as Ctrl-C would (SIGINT to
  its process group: the command, its workers and its Redis; SIGKILL after a grace period), logs that
  firing as `interrupted`, and exits.

Schedules are re-read from the store every second, so `schedule add` and `remove` take effect on a
running server. One server per store: a second one would fire the same schedules again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..history.records import format_time
from ..history.schedules import Firing, FiringStatus, Schedule, due_times_s, next_due_s
from ..history.store import STORE_ENV, ResultStore

#: Seconds between looks at the running command and the schedules when nothing is due sooner.
POLL_S = 0.2
#: Seconds between re-reading the schedules from the store.
RELOAD_S = 1.0
#: Seconds the running command gets to stop after SIGINT before it is killed.
STOP_GRACE_S = 30.0
#: Commands that write an output folder (`--out`), which the server names when the command does not.
COMMANDS_WITH_OUT = ("run", "study")
#: How many due times a `missed` entry lists in its detail.
MISSED_LISTED = 3


@dataclass
class _Running:
    firing: Firing
    process: subprocess.Popen[bytes]
    log_file: IO[bytes]


class Scheduler:
    """The server's loop; `serve(stop)` returns when `stop` is set."""

    def __init__(
        self,
        store: ResultStore,
        *,
        store_location: str,
        runs_dir: Path,
        log: Callable[[str], None],
        stop_grace_s: float = STOP_GRACE_S,
    ) -> None:
        self.store = store
        self.store_location = store_location
        self.runs_dir = runs_dir
        self.log = log
        self.stop_grace_s = stop_grace_s
        self._due: dict[str, float] = {}  # schedule name -> next due time (unix seconds)
        self._schedules: dict[str, Schedule] = {}
        self._running: _Running | None = None

    def serve(self, stop: threading.Event) -> None:
        abandoned = self.store.abandon_running_firings("the server running it stopped without finishing it")
        if abandoned:
            self.log(f"{abandoned} firing(s) left running by an earlier server marked abandoned")
        self._reload(time.time(), starting=True)
        last_reload = time.monotonic()
        try:
            while not stop.is_set():
                self._reap()
                now = time.time()
                if time.monotonic() - last_reload >= RELOAD_S:
                    self._reload(now, starting=False)
                    last_reload = time.monotonic()
                for name in sorted(self._due, key=self._due.__getitem__):
                    if self._due[name] <= now:
                        self._fire(self._schedules[name], self._due[name], now)
                wait_s = min([*(due - time.time() for due in self._due.values()), RELOAD_S])
                stop.wait(min(max(wait_s, 0.0), POLL_S if self._running else RELOAD_S))
        finally:
            self._stop_running()

    # -- schedules ------------------------------------------------------------------------------------

    def _reload(self, now: float, *, starting: bool) -> None:
        current = {schedule.name: schedule for schedule in self.store.schedules()}
        for name in list(self._schedules):
            if current.get(name) != self._schedules[name]:  # removed, or removed and added anew
                self._schedules.pop(name)
                self._due.pop(name, None)
        for name, schedule in current.items():
            if name in self._schedules:
                continue
            self._schedules[name] = schedule
            if starting:
                last = self.store.last_due_unix_ms(name)
                since = (last if last is not None else schedule.created_unix_ms) / 1000.0
                self._log_missed(schedule, since, now, reason="no schedule server was running")
            self._due[name] = next_due_s(schedule.cron, max(now, schedule.created_unix_ms / 1000.0), schedule.timezone)
            self.log(
                f"schedule {name} ({schedule.cron} {schedule.timezone}): next at {format_time(self._due[name] * 1000)}"
            )

    def _log_missed(self, schedule: Schedule, after_s: float, until_s: float, *, reason: str) -> None:
        """One `missed` entry for the due times in (after, until], if there are any."""
        due = due_times_s(schedule.cron, after_s, until_s, schedule.timezone, listed=MISSED_LISTED)
        if not due.count or due.last is None:
            return
        detail = f"{due.count} due time(s) missed ({reason}): " + ", ".join(
            format_time(moment * 1000) for moment in due.first
        )
        if due.count > MISSED_LISTED:
            detail += f", ... {format_time(due.last * 1000)}"
        self.store.add_firing(
            Firing(
                schedule=schedule.name,
                due_unix_ms=round(due.first[0] * 1000),
                last_due_unix_ms=round(due.last * 1000),
                status="missed",
                missed_count=due.count,
                detail=detail,
                command=list(schedule.command),
            )
        )
        self.log(f"schedule {schedule.name}: {detail}; not replayed")

    # -- firing ---------------------------------------------------------------------------------------

    def _fire(self, schedule: Schedule, due_s: float, now: float) -> None:
        """Start the schedule's command for the due time `due_s`, or log it skipped; then move on to
        the next due time (due times that passed meanwhile are logged missed)."""
        if self._running is not None:
            running = self._running.firing
            self.store.add_firing(
                Firing(
                    schedule=schedule.name,
                    due_unix_ms=round(due_s * 1000),
                    status="skipped",
                    detail=f"{running.schedule} (due {format_time(running.due_unix_ms)}) was still running",
                    command=list(schedule.command),
                )
            )
            self.log(f"schedule {schedule.name}: {format_time(due_s * 1000)} skipped, {running.schedule} still running")
        else:
            self._start(schedule, due_s)
        self._log_missed(schedule, due_s, now, reason="the server was busy or paused")
        self._due[schedule.name] = next_due_s(schedule.cron, now, schedule.timezone)

    def _start(self, schedule: Schedule, due_s: float) -> None:
        command = list(schedule.command)
        folder = self.runs_dir / schedule.name
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(due_s))
        out_dir = given_out_dir(command)
        if out_dir is None and command and command[0] in COMMANDS_WITH_OUT:
            out_dir = folder / stamp
            command += ["--out", str(out_dir)]
        folder.mkdir(parents=True, exist_ok=True)
        log_path = folder / f"{stamp}.log"
        environment = {**os.environ, STORE_ENV: self.store_location}
        log_file = log_path.open("ab")
        firing = Firing(
            schedule=schedule.name,
            due_unix_ms=round(due_s * 1000),
            status="running",
            started_unix_ms=_now_ms(),
            out_dir=str(out_dir) if out_dir is not None else None,
            log_path=str(log_path),
            command=command,
        )
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "meshload", *command],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=environment,
                start_new_session=True,  # its own process group: stopping it stops its workers too
            )
        except OSError as exc:
            log_file.close()
            firing.status, firing.ended_unix_ms, firing.detail = "failed", _now_ms(), f"could not start: {exc}"
            self.store.add_firing(firing)
            self.log(f"schedule {schedule.name}: could not start meshload ({exc})")
            return
        self.store.add_firing(firing)
        self._running = _Running(firing, process, log_file)
        self.log(f"schedule {schedule.name}: started meshload {' '.join(command)} (pid {process.pid}, log {log_path})")

    def _reap(self) -> None:
        running = self._running
        if running is None or running.process.poll() is None:
            return
        self._finish(running, "succeeded" if running.process.returncode == 0 else "failed")

    def _finish(self, running: _Running, status: FiringStatus) -> None:
        code = running.process.returncode
        firing = running.firing
        firing.status = status
        firing.exit_code = code
        firing.ended_unix_ms = _now_ms()
        if code is not None and code < 0:
            firing.detail = f"ended by signal {signal.Signals(-code).name}"
        running.log_file.close()
        self.store.update_firing(firing)
        self._running = None
        self.log(f"schedule {firing.schedule}: {status}, exit code {code}")

    def _stop_running(self) -> None:
        running = self._running
        if running is None:
            return
        self.log(f"stopping the running command of {running.firing.schedule} (pid {running.process.pid})")
        _signal_group(running.process, signal.SIGINT)
        try:
            running.process.wait(self.stop_grace_s)
        except subprocess.TimeoutExpired:
            _signal_group(running.process, signal.SIGKILL)
            running.process.wait()
        self._finish(running, "interrupted")


def given_out_dir(command: list[str]) -> Path | None:
    """The folder a command line names with --out/-o, if it does."""
    for index, word in enumerate(command):
        if word.startswith("--out="):
            return Path(word.split("=", 1)[1])
        if word in ("--out", "-o") and index + 1 < len(command):
            return Path(command[index + 1])
    return None


def _signal_group(process: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(process.pid, signum)


def _now_ms() -> int:
    return int(time.time() * 1000)
