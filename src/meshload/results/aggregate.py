"""Merging the workers' interval records into one run's result, as the records arrive.

Every record is a delta (one worker, one interval), so merging is addition: counters are summed and
histograms are merged by adding their counts, never by averaging percentiles. Each histogram blob is
decoded once (`decode_counts`) and its non-empty stretch of counters is added with numpy to
everything it feeds: the run's totals, the second it belongs to (latency and schedule lag, so a stall
can be placed in time), and its worker's lag histogram.

A record is identified by `(worker_id, seq)`; one seen twice (a retried publish) is counted once.
Warm-up records are kept out of the statistics but summarised and shown in the timeseries.

Memory is bounded by the run's length in minutes, not its requests or seconds: a second's merged
histogram (`seconds.Second`) is kept dense only while records for it may still arrive (`OPEN_SECONDS`
behind the newest second), then reduced to its non-empty counters, and dropped altogether once it is
`PER_SECOND_WINDOW_S` behind the newest; every record also feeds its minute (`minutes.Minute`),
which stays for the whole run. The cumulative histograms are exact whatever the run's length.
"""

from __future__ import annotations

import math

import msgspec

from ..scenarios.plan import Plan
from .histogram import DecodedCounts, LatencyHistogram, decode_counts
from .hlog import IntervalLogSpool
from .interval import IntervalRecord, NameInterval, is_failed_status
from .live_figures import LIVE_QUANTILES, LatencySummary, LiveFigures, latency_summaries
from .minutes import MINUTE_S, Minute
from .run_assembly import copy_name, minute_points, timeseries, worker_summaries
from .run_result import MeshUsage, NameSummary, RunResult, WorkerSummary
from .seconds import SECOND_PERCENTILES, SECOND_S, Second
from .validity import judge
from .worker_records import WorkerRecords

#: Seconds behind the newest one whose merged histogram stays dense (late records are cheap there).
OPEN_SECONDS = 3
#: Seconds kept per second behind the newest (10 minutes); older ones live on in their minute.
PER_SECOND_WINDOW_S = 600
#: Seconds (and minutes) this far behind the newest keep their figures only, not their counters: a
#: record later than that (a long Redis outage) no longer moves their percentiles.
KEEP_COUNTERS_SECONDS = 60
KEEP_COUNTERS_MINUTES = 10
#: A record whose start is this close below a second boundary belongs to the next second.
OFFSET_TOLERANCE_S = 0.01
#: Bytes of histogram blobs kept for the interval log before records stop being kept.
MAX_KEPT_RECORD_BYTES = 128 * 1024 * 1024


def failed_requests(status_codes: dict[str, int], errors: dict[str, int]) -> int:
    """Requests that failed from the client's view: transport errors plus HTTP statuses >= 400 and
    gRPC statuses other than OK."""
    return sum(errors.values()) + sum(count for code, count in status_codes.items() if is_failed_status(code))


class RunAggregator:
    """Merges one run's interval records; `result()` gives the `RunResult` at any moment.

    Not thread-safe: one consumer (the coordinator's reader, or a standalone run) feeds it.
    """

    def __init__(
        self,
        plan: Plan,
        run_id: str,
        *,
        max_kept_record_bytes: int = MAX_KEPT_RECORD_BYTES,
        per_second_window_s: int = PER_SECOND_WINDOW_S,
        log_spool: IntervalLogSpool | None = None,
    ) -> None:
        self.plan = plan
        self.run_id = run_id
        self.foreign_records = 0  # records of another run, refused
        self._max_kept_record_bytes = max_kept_record_bytes
        self._kept_record_bytes = 0
        self._records: list[IntervalRecord] = []
        self.log_spool = log_spool  # given: the interval log goes to disk, not into `_records`
        self._records_dropped = 0
        self._workers: dict[str, WorkerRecords] = {}
        self._seconds: dict[int, Second] = {}
        self._newest_second = -1
        self._per_second_window = per_second_window_s
        self._seconds_dropped_below = 0  # seconds before this index were dropped (their minutes stay)
        self._seconds_forgotten_below = 0  # seconds before this index keep their figures only
        self._minutes: dict[int, Minute] = {}
        self._newest_minute = -1
        # Measured part (warm-up excluded).
        self._corrected = LatencyHistogram()
        self._uncorrected = LatencyHistogram()
        self._lag = LatencyHistogram()
        self._warmup_corrected = LatencyHistogram()
        self._sent = 0
        self._completed = 0
        self._status_codes: dict[str, int] = {}
        self._errors: dict[str, int] = {}
        self._bytes_received = 0
        self._late = 0
        self._missed = 0
        self._clamped = 0
        self._connects = 0
        self._connect_us_total = 0
        self._connect_us_max = 0
        self._measured_start_s = math.inf
        self._measured_end_s = 0.0
        self._measured_start_unix_ms = 0
        self._measured_end_unix_ms = 0
        self._warmup_completed = 0
        self._warmup_start_s = math.inf
        self._warmup_end_s = 0.0
        self._max_clock_offset_ms = 0.0
        self._elapsed_s = 0.0
        self._all_completed = 0
        self._all_failed = 0
        self._names: dict[str, NameSummary] = {}  # measured part, per request name

    # -- feeding ---------------------------------------------------------------------------------

    def add(self, record: IntervalRecord) -> bool:
        """Merge one record. False when it was already merged (same worker and seq) or belongs to
        another run. Raises ValueError, with nothing merged, when a histogram blob is malformed."""
        if record.run_id and self.run_id and record.run_id != self.run_id:
            self.foreign_records += 1
            return False
        worker = self._worker(record.worker_id)
        if record.seq in worker.seqs:
            return False
        # Decode everything before touching any state, so a bad blob leaves the aggregate intact.
        corrected = decode_counts(record.latency_corrected)
        uncorrected = decode_counts(record.latency_uncorrected)
        lag = decode_counts(record.schedule_lag)
        names = {name: _decode_name(part) for name, part in record.names.items()}
        worker.seqs.add(record.seq)
        if record.final:
            worker.finished = True

        failed = failed_requests(record.status_codes, record.errors)
        worker.count(record, failed)
        self._add_to_second(record, corrected, lag, failed)
        self._add_to_minute(record, corrected, failed)
        self._elapsed_s = max(self._elapsed_s, record.offset_s + record.duration_s)
        self._all_completed += record.completed
        self._all_failed += failed
        self._max_clock_offset_ms = max(self._max_clock_offset_ms, abs(record.clock_offset_ms))

        if record.warmup:
            self._warmup_completed += record.completed
            self._warmup_start_s = min(self._warmup_start_s, record.offset_s)
            self._warmup_end_s = max(self._warmup_end_s, record.offset_s + record.duration_s)
            self._warmup_corrected.add_counts(corrected)
        else:
            self._add_measured(record, corrected, uncorrected, lag)
            self._add_names(names)
            worker.lag.add_counts(lag)
        self._keep_for_log(record)
        return True

    def mark_lost(self, worker_id: str, reason: str = "") -> None:
        """The worker went silent: keep what it sent, count it as lost (the run is degraded)."""
        summary = self._worker(worker_id).summary
        summary.lost, summary.lost_reason = True, reason

    def mark_returned(self, worker_id: str) -> None:
        """A worker counted lost sent records again (it was paused or starved, not gone): it is no
        longer lost; `returned` keeps that it was silent for a while."""
        summary = self._worker(worker_id).summary
        if summary.lost:
            summary.lost, summary.returned = False, True

    def expect_workers(self, worker_ids: list[str]) -> None:
        """Name the run's workers up front, so one that never reports still shows (and can be lost)."""
        for worker_id in worker_ids:
            self._worker(worker_id)

    def missing_records(self) -> dict[str, int]:
        """Per worker, the records below its highest seq that never arrived (a trimmed stream)."""
        return {w.summary.id: w.seqs.gaps for w in self._workers.values() if w.seqs.gaps}

    @property
    def finished_workers(self) -> frozenset[str]:
        """Workers whose final record has been merged."""
        return frozenset(w.summary.id for w in self._workers.values() if w.finished)

    # -- reading ---------------------------------------------------------------------------------

    def snapshot(self) -> LiveFigures:
        """Figures for a live view; a few percentile passes, whatever the number of workers or seconds."""
        in_warmup = self._corrected.total_count == 0
        latency = self._warmup_corrected if in_warmup else self._corrected
        p50_us, p99_us = latency.values_at_percentiles(SECOND_PERCENTILES).values()
        alive = sum(1 for w in self._workers.values() if not w.summary.lost)
        rate = sent_rate = 0.0
        second = self._last_complete_second(alive)
        if second is not None and second.end_s > 0:
            rate = second.completed / second.end_s
            sent_rate = second.sent / second.end_s
        return LiveFigures(
            elapsed_s=self._elapsed_s,
            total_s=self.plan.total_s,
            rate=rate,
            sent_rate=sent_rate,
            p50_ms=p50_us / 1000.0,
            p99_ms=p99_us / 1000.0,
            lag_p99_ms=self._lag.value_at_percentile(99.0) / 1000.0 if self._lag.total_count else 0.0,
            completed=self._all_completed,
            errors=self._all_failed,
            workers_alive=alive,
            workers_lost=len(self._workers) - alive,
            workers_finished=sum(1 for w in self._workers.values() if w.finished),
            in_warmup=in_warmup,
        )

    def live_summaries(self, quantiles: tuple[float, ...] = LIVE_QUANTILES) -> dict[str, LatencySummary]:
        """ "corrected", "uncorrected" latency and "schedule_lag" so far, for a Prometheus endpoint:
        the measured part (the warm-up's corrected latency while in it, as `snapshot` shows)."""
        in_warmup = self._corrected.total_count == 0
        histograms = {
            "corrected": self._warmup_corrected if in_warmup else self._corrected,
            "uncorrected": self._uncorrected,
            "schedule_lag": self._lag,
        }
        return latency_summaries(histograms, quantiles)

    def result(
        self,
        *,
        mesh: MeshUsage | None = None,
        environment: dict[str, object] | None = None,
        streams_lost: int = 0,
        malformed_records: int = 0,
        interrupted: str = "",
    ) -> RunResult:
        """The merged result so far, judged (call it again after more records for a newer one).

        `streams_lost` and `malformed_records` are what the pipeline knows of records that never
        reached this aggregator; the verdict counts them."""
        workers = worker_summaries(self._workers.values(), environment)
        measured_s = self._measured_end_s - self._measured_start_s if self._measured_start_s < math.inf else 0.0
        labels = dict(self.plan.labels)
        if mesh is not None and mesh.function and "function" not in labels:
            labels["function"] = mesh.function
        result = RunResult(
            run_id=self.run_id,
            plan=self.plan,
            started_unix_ms=self._measured_start_unix_ms,
            ended_unix_ms=self._measured_end_unix_ms,
            measured_s=measured_s,
            corrected=self._corrected.copy(),
            uncorrected=self._uncorrected.copy(),
            lag=self._lag.copy(),
            sent=self._sent,
            completed=self._completed,
            status_codes=dict(sorted(self._status_codes.items())),
            errors=dict(sorted(self._errors.items())),
            bytes_received=self._bytes_received,
            late=self._late,
            missed=self._missed,
            clamped=self._clamped,
            warmup_completed=self._warmup_completed,
            warmup_s=(self._warmup_end_s - self._warmup_start_s) if self._warmup_start_s < math.inf else 0.0,
            workers=workers,
            timeseries=timeseries(self._seconds),
            minutes=minute_points(self._minutes),
            max_clock_offset_ms=self._max_clock_offset_ms,
            mesh=mesh,
            labels=labels,
            records=sorted(self._records, key=lambda r: (r.offset_s, r.worker_id, r.seq)),
            log_spool=self.log_spool,
            records_dropped=self._records_dropped,
            streams_lost=streams_lost,
            malformed_records=malformed_records,
            interrupted=interrupted,
            connects=self._connects,
            connect_ms_total=self._connect_us_total / 1000.0,
            connect_ms_max=self._connect_us_max / 1000.0,
            environment=dict(environment or {}),
            by_name={name: copy_name(summary) for name, summary in sorted(self._names.items())},
        )
        judge(result)
        return result

    # -- inside ----------------------------------------------------------------------------------

    def _worker(self, worker_id: str) -> WorkerRecords:
        worker = self._workers.get(worker_id)
        if worker is None:
            worker = self._workers[worker_id] = WorkerRecords(WorkerSummary(id=worker_id))
        return worker

    def _add_measured(
        self, record: IntervalRecord, corrected: DecodedCounts, uncorrected: DecodedCounts, lag: DecodedCounts
    ) -> None:
        self._corrected.add_counts(corrected)
        self._uncorrected.add_counts(uncorrected)
        self._lag.add_counts(lag)
        self._sent += record.sent
        self._completed += record.completed
        _add_counts(self._status_codes, record.status_codes)
        _add_counts(self._errors, record.errors)
        self._bytes_received += record.bytes_received
        self._late += record.late
        self._missed += record.missed
        self._clamped += record.clamped
        self._connects += record.connects
        self._connect_us_total += record.connect_us_total
        self._connect_us_max = max(self._connect_us_max, record.connect_us_max)
        self._measured_start_s = min(self._measured_start_s, record.offset_s)
        self._measured_end_s = max(self._measured_end_s, record.offset_s + record.duration_s)
        if record.start_unix_ms:
            start_ms = record.start_unix_ms
            end_ms = start_ms + round(record.duration_s * 1000.0)
            if not self._measured_start_unix_ms or start_ms < self._measured_start_unix_ms:
                self._measured_start_unix_ms = start_ms
            self._measured_end_unix_ms = max(self._measured_end_unix_ms, end_ms)

    def _add_names(self, names: dict[str, tuple[NameInterval, DecodedCounts, DecodedCounts]]) -> None:
        for name, (part, corrected, uncorrected) in names.items():
            summary = self._names.get(name)
            if summary is None:
                summary = self._names[name] = NameSummary(LatencyHistogram(), LatencyHistogram())
            summary.corrected.add_counts(corrected)
            summary.uncorrected.add_counts(uncorrected)
            summary.completed += part.completed
            summary.errors += part.errors
            summary.failures += part.failures

    def _add_to_minute(self, record: IntervalRecord, corrected: DecodedCounts, failed: int) -> None:
        index = max(math.floor((record.offset_s + OFFSET_TOLERANCE_S) / MINUTE_S), 0)
        minute = self._minutes.get(index)
        if minute is None:
            minute = self._minutes[index] = Minute()
        minute.add(
            completed=record.completed,
            sent=record.sent,
            failed=failed,
            late=record.late,
            warmup=record.warmup,
            end_s=record.offset_s + record.duration_s - index * MINUTE_S,
            latency=corrected,
        )
        if index < self._newest_minute - 1:
            minute.close()  # a late record for an old minute: merged exactly, then put away again
        if index > self._newest_minute:
            self._newest_minute = index
            old = self._minutes.get(index - 2)
            if old is not None:
                old.close()
            oldest = self._minutes.get(index - KEEP_COUNTERS_MINUTES)
            if oldest is not None:
                oldest.forget()

    def _add_to_second(self, record: IntervalRecord, corrected: DecodedCounts, lag: DecodedCounts, failed: int) -> None:
        index = max(math.floor((record.offset_s + OFFSET_TOLERANCE_S) / SECOND_S), 0)
        if index < self._seconds_dropped_below:
            return  # beyond the per-second window: its minute has it
        second = self._seconds.get(index)
        if second is None:
            second = self._seconds[index] = Second()
        second.completed += record.completed
        second.sent += record.sent
        second.failed += failed
        second.late += record.late
        second.reporters += 1
        second.warmup = second.warmup or record.warmup
        end_in_second = record.offset_s + record.duration_s - index * SECOND_S
        second.end_s = min(max(second.end_s, end_in_second), SECOND_S)
        second.add_latency(corrected)
        second.add_lag(lag)
        if index < self._newest_second - OPEN_SECONDS:
            second.close()  # a late record for an old second: merged exactly, then put away again
        if index > self._newest_second:
            self._newest_second = index
            for old_index in range(index - OPEN_SECONDS - 1, self._seconds_dropped_below - 1, -1):
                old = self._seconds.get(old_index)
                if old is None or not old.is_open:
                    # Seconds close in order, so everything before a closed one is closed.
                    if old is not None:
                        break
                    continue
                old.close()
            self._drop_old_seconds()

    def _drop_old_seconds(self) -> None:
        """Seconds beyond the window go (their minutes keep them), and late records for them too;
        those a minute old keep their figures only."""
        counters_from = self._newest_second - KEEP_COUNTERS_SECONDS
        for old_index in range(max(self._seconds_forgotten_below, 0), max(counters_from, 0)):
            second = self._seconds.get(old_index)
            if second is not None:
                second.forget()
        self._seconds_forgotten_below = max(self._seconds_forgotten_below, counters_from)
        keep_from = self._newest_second - self._per_second_window + 1
        for old_index in range(self._seconds_dropped_below, max(keep_from, 0)):
            self._seconds.pop(old_index, None)
        self._seconds_dropped_below = max(self._seconds_dropped_below, keep_from)

    def _last_complete_second(self, alive: int) -> Second | None:
        """The newest second every live worker has reported; else the one before the newest."""
        newest = self._newest_second
        for index in range(newest, max(newest - OPEN_SECONDS - 1, -1), -1):
            second = self._seconds.get(index)
            if second is not None and second.reporters >= alive:
                return second
        return self._seconds.get(newest - 1)

    def _keep_for_log(self, record: IntervalRecord) -> None:
        if self.log_spool is not None:
            self.log_spool.add(record)
            return
        size = len(record.latency_corrected) + len(record.latency_uncorrected)
        if self._kept_record_bytes + size > self._max_kept_record_bytes:
            self._records_dropped += 1
            return
        self._kept_record_bytes += size
        self._records.append(_for_interval_log(record))


def _for_interval_log(record: IntervalRecord) -> IntervalRecord:
    # The interval log carries the latency histograms; the lag blob and the per-name histograms (merged
    # into the result) are not needed there.
    return msgspec.structs.replace(record, schedule_lag="", names={})


def _decode_name(part: NameInterval) -> tuple[NameInterval, DecodedCounts, DecodedCounts]:
    return part, decode_counts(part.latency_corrected), decode_counts(part.latency_uncorrected)


def _add_counts(total: dict[str, int], more: dict[str, int]) -> None:
    for key, count in more.items():
        total[key] = total.get(key, 0) + count
