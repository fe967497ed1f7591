"""One engine run on an asyncio loop: what every asyncio engine shares, whatever its protocol.

`EngineRunner` owns the recorder, cuts the interval records on time (`worker.intervals`), hears the
early stop, and sums up the `EngineOutcome`; a subclass sends the requests (`_generate`) and says
what else runs beside it (`_background`) and what to release afterwards (`_shutdown`). A task of the
run that fails with an unexpected exception stops the run, and `run()` raises it once everything is
released: a bug surfaces with its traceback, never as a silently short run.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections import deque
from collections.abc import Coroutine, Iterator
from time import monotonic_ns
from typing import Any

from ...scenarios.plan import ClosedLoop, Plan
from ...scenarios.schedule import WorkerShare
from ..fold_channel import FoldChannel
from ..intervals import interval_cuts_s, is_warmup
from ..offloaded_recorder import OffloadedRecorder, wants_fold_process
from ..recorder import IntervalRecorder, PendingRecord
from .base import EncodedRecordSink, EngineJob, EngineOutcome, RecordSink
from .pacing import wait_for_due

Job = Coroutine[Any, Any, None]


class EngineRunner:
    """One run of one worker's share; `await runner.run()` once."""

    #: How the records name the statuses the engine records (see `IntervalRecorder.status_names`).
    status_names: tuple[str, ...] = ()

    def __init__(self, job: EngineJob, stop: asyncio.Event | None) -> None:
        share: WorkerShare = job.share
        plan: Plan = share.plan
        self.share = share
        self.plan = plan
        self.loop = asyncio.get_running_loop()
        self.start_ns = job.start_ns
        #: No request starts at or after this instant (moved earlier by a stop).
        self.end_ns = job.start_ns + round(plan.total_s * 1e9)
        self.sink: RecordSink = job.sink
        self.encoded_sink: EncodedRecordSink | None = job.encoded_sink
        self.interval_s = job.interval_s
        settings: dict[str, Any] = {
            "worker_id": job.worker_id,
            "run_id": job.run_id,
            "clock_offset_ms": job.clock_offset_ms,
            "status_names": self.status_names,
        }
        #: At high rates the histograms are folded in a process of their own, off the pacing path.
        self.fold_channel: FoldChannel | None = None
        if wants_fold_process(share):
            self.fold_channel = FoldChannel(on_failure=self._fail)
            self.recorder: IntervalRecorder = OffloadedRecorder(self.fold_channel, **settings)
        else:
            self.recorder = IntervalRecorder(**settings)
        self.recorder.defer = self.loop.call_soon  # full buffers are folded between the loop's callbacks
        self.stop_event = stop
        self.stopped_early = False
        self.connections_opened = 0
        # Wall-clock anchor of the start instant, for the records' timestamps.
        self.start_unix_ms = time.time() * 1000.0 - (monotonic_ns() - job.start_ns) / 1e6
        self._interval_start_s = 0.0
        # Cuts whose records are not complete or not handed on yet, oldest first.
        self._unsent: deque[PendingRecord] = deque()
        self._records = 0
        self._failure: BaseException | None = None

    # -- what a subclass provides -----------------------------------------------------------------

    async def _generate(self) -> None:
        """Send the share's requests; return when the last one has ended (or the drain gave up)."""
        raise NotImplementedError

    def _background(self) -> list[Job]:
        """What runs beside `_generate` until it returns (then cancelled)."""
        jobs = [self._cut_intervals()]
        if self.stop_event is not None:
            jobs.append(self._watch_stop(self.stop_event))
        return jobs

    async def _shutdown(self) -> None:
        """Release what the run holds (connections, their tasks) before the final record."""

    def _on_stop(self) -> None:
        """The run was told to stop now: send nothing more."""

    def _before_cut(self) -> None:
        """Bring the recorder's counters up to date just before a record is cut."""

    def _before_cut_steps(self) -> Iterator[None]:
        """`_before_cut` in steps the loop can interleave with its sends (by default, one)."""
        self._before_cut()
        yield

    def _attempted(self) -> int:
        """`EngineOutcome.attempted`; by default the requests that ended."""
        recorder = self.recorder
        return recorder.total_completed + sum(recorder.total_errors.values())

    # -- the run ------------------------------------------------------------------------------

    async def run(self) -> EngineOutcome:
        # Everything alive now (modules, the plan, pydantic's schemas) stays alive for the run: move it
        # out of the collector's sight, so a full collection does not rescan it during the hot loop.
        gc.freeze()
        channel = self.fold_channel
        if channel is not None:
            await channel.start()
        try:
            end_s = await self._run_and_finish()
        finally:
            if channel is not None:
                await channel.close()
        return self._outcome(end_s)

    async def _run_and_finish(self) -> float:
        """The run up to its final record; the end instant, seconds after the start."""
        background = [self.spawn(job) for job in self._background()]
        if self.stop_event is not None and self.stop_event.is_set():
            self.stop_now()  # stopped before it began: nothing is sent
        try:
            await self._generate()
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            try:
                await self._finish_pending()
            finally:
                await self._shutdown()
        if self._failure is not None:
            raise self._failure
        end_s = (monotonic_ns() - self.start_ns) / 1e9
        offset_s = self._interval_start_s
        self._before_cut()
        pending = self.recorder.detach(
            offset_s=offset_s,
            duration_s=max(end_s - offset_s, 0.0),
            start_unix_ms=round(self.start_unix_ms + offset_s * 1000.0),
            final=True,
        )
        await pending.completed()
        self._hand_on(pending)
        return end_s

    def spawn(self, job: Job) -> asyncio.Task[None]:
        """Run `job` as a task of this run: if it fails, the run stops and `run()` raises the error."""
        task = asyncio.ensure_future(job)
        task.add_done_callback(self._check_task)
        return task

    def _check_task(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        """Something the run depends on failed: stop, and have `run()` raise `exc` (the first one)."""
        if self._failure is None:
            self._failure = exc
            self.stop_now()

    def stop_now(self) -> None:
        """End the run early: nothing new starts; in-flight requests get their timeout."""
        if self.stopped_early:
            return
        self.stopped_early = True
        self.end_ns = min(self.end_ns, monotonic_ns())
        self._on_stop()

    async def _watch_stop(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self.stop_now()

    def _outcome(self, elapsed_s: float) -> EngineOutcome:
        return EngineOutcome.of(
            self.recorder,
            attempted=self._attempted(),
            records=self._records,
            elapsed_s=elapsed_s,
            connections_opened=self.connections_opened,
        )

    # -- intervals ----------------------------------------------------------------------------

    async def _cut_intervals(self) -> None:
        """Cut on time, off the path that paces the sends: the interval is detached at once and its
        record made in small steps, the loop sending what falls due in between (or made by the fold
        process); records are handed on in order as they complete."""
        for cut_s in interval_cuts_s(self.plan.total_s, self.plan.warmup_s, self.interval_s):
            await wait_for_due(self.start_ns + round(cut_s * 1e9))
            offset_s, duration_s = self._interval_start_s, cut_s - self._interval_start_s
            for _ in self._before_cut_steps():
                await asyncio.sleep(0)
            pending = self.recorder.detach(
                offset_s=offset_s,
                duration_s=duration_s,
                start_unix_ms=round(self.start_unix_ms + offset_s * 1000.0),
                warmup=is_warmup(offset_s + duration_s, self.plan.warmup_s),
            )
            self._interval_start_s = cut_s
            self._unsent.append(pending)
            pending.when_ready(self._hand_on_ready_or_fail)
            for _ in pending.steps():
                await asyncio.sleep(0)
            self._hand_on_ready()

    def _hand_on_ready(self) -> None:
        """Hand the complete records on to the sink, oldest first, up to the first one not complete."""
        unsent = self._unsent
        while unsent and unsent[0].ready:
            self._hand_on(unsent.popleft())

    def _hand_on(self, pending: PendingRecord) -> None:
        """One complete record to the sink: encoded as it is, where the sink takes that."""
        self._records += 1
        if self.encoded_sink is not None:
            self.encoded_sink(pending.encoded())
        else:
            self.sink(pending.result())

    def _hand_on_ready_or_fail(self) -> None:
        """`_hand_on_ready` as a callback of the loop, which would only log an error: the run fails
        with it instead, as it does when a task of the run fails."""
        try:
            self._hand_on_ready()
        except Exception as exc:  # noqa: BLE001 - whatever the sink raised is the run's failure
            self._fail(exc)

    async def _finish_pending(self) -> None:
        """Complete the cuts still under way (the run may end in the middle of one) and hand them on."""
        for pending in list(self._unsent):
            await pending.completed(now=True)
        self._hand_on_ready()


def think_time(plan: Plan) -> tuple[float, int]:
    """A closed loop's pause between a response and its client's next request: seconds, nanoseconds."""
    load = plan.load
    assert isinstance(load, ClosedLoop)
    return load.think_time_s, round(load.think_time_s * 1e9)
