"""The run's HdrHistogram interval log (`histograms.hlog`), in the format of HdrHistogram's
`HistogramLogWriter` (log format 1.2), so `hdrh.log.HistogramLogReader`, Java's
`HistogramLogProcessor` and HdrHistogram plotters read it.

One line per worker per interval and per kind, tagged `<worker>.corrected` or `<worker>.uncorrected`:

    Tag=worker-0.corrected,3.000,1.000,12.543,HISTFAAAA...

Timestamps are seconds after the run's common start, which the `#[StartTime:` and `#[BaseTime:`
lines give as seconds since the epoch. The max column is in milliseconds (values are microseconds).
The blobs are the workers' own encodings, written as they arrived: nothing is re-encoded.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from .histogram import decode_counts
from .interval import IntervalRecord

LOG_FORMAT_VERSION = "1.2"
KINDS = ("corrected", "uncorrected")
#: Values are microseconds; the max column is written in milliseconds.
MAX_VALUE_UNIT_RATIO = 1000.0
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_.:/@-]")
_LINE = re.compile(r"^Tag=([^,]*),([\d.]+),([\d.]+),([\d.]+),(\S+)$")


def log_tag(worker_id: str, kind: str) -> str:
    """A tag HdrHistogram logs accept (no commas or spaces), e.g. `worker-0.corrected`."""
    return f"{_TAG_UNSAFE.sub('_', worker_id)}.{kind}"


def run_start_unix_ms(records: Iterable[IntervalRecord]) -> int:
    """The run's common start instant on the wall clock, from the records that carry one."""
    starts = [r.start_unix_ms - round(r.offset_s * 1000.0) for r in records if r.start_unix_ms]
    return min(starts) if starts else 0


def write_interval_log(records: Iterable[IntervalRecord], path: Path) -> int:
    """Write the records' latency histograms as an interval log; returns the lines written."""
    ordered = sorted(records, key=lambda r: (r.offset_s, r.worker_id, r.seq))
    lines = 0
    with path.open("w", encoding="utf-8") as log:
        _write_header(log, run_start_unix_ms(ordered))
        for record in ordered:
            lines += _write_record(log, record)
    return lines


def _write_header(log: TextIO, start_ms: int) -> None:
    start_s = start_ms / 1000.0
    log.write(f"#[Histogram log format version {LOG_FORMAT_VERSION}]\n")
    log.write("#[meshload interval log: latencies in microseconds, one line per worker per interval]\n")
    started = datetime.fromtimestamp(start_s, tz=UTC).strftime("%a %b %d %H:%M:%S UTC %Y")
    log.write(f"#[StartTime: {start_s:.3f} (seconds since epoch), {started}]\n")
    log.write(f"#[BaseTime: {start_s:.3f} (seconds since epoch)]\n")
    log.write('"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"\n')


def _write_record(log: TextIO, record: IntervalRecord) -> int:
    lines = 0
    for kind, blob in zip(KINDS, (record.latency_corrected, record.latency_uncorrected), strict=True):
        if not blob:
            continue
        max_ms = decode_counts(blob).max_us / MAX_VALUE_UNIT_RATIO
        log.write(
            f"Tag={log_tag(record.worker_id, kind)},{record.offset_s:.3f},{record.duration_s:.3f},{max_ms:.3f},{blob}\n"
        )
        lines += 1
    return lines


class IntervalLogSpool:
    """The interval log of a long run, kept on disk as records arrive instead of in memory: the
    lines go to a spool file (in arrival order, which is time order but for late records), and
    `write_log` puts the header before them. Memory stays flat however long the run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines = 0
        self._start_ms = 0
        self._file: TextIO = path.open("w", encoding="utf-8")

    def add(self, record: IntervalRecord) -> None:
        if record.start_unix_ms:
            start_ms = record.start_unix_ms - round(record.offset_s * 1000.0)
            self._start_ms = start_ms if not self._start_ms else min(self._start_ms, start_ms)
        self.lines += _write_record(self._file, record)

    def write_log(self, path: Path) -> int:
        """The whole log so far into `path` (header, then the spooled lines); returns its lines."""
        self._file.flush()
        with path.open("w", encoding="utf-8") as log, self.path.open(encoding="utf-8") as spooled:
            _write_header(log, self._start_ms)
            shutil.copyfileobj(spooled, log)
        return self.lines

    def close(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class LogLine:
    """One interval line of a meshload interval log."""

    tag: str
    offset_s: float
    duration_s: float
    blob: str

    @property
    def worker_id(self) -> str:
        return self.tag.rsplit(".", 1)[0]

    @property
    def kind(self) -> str:
        return self.tag.rsplit(".", 1)[-1]


def read_interval_log(path: Path) -> tuple[int, list[LogLine]]:
    """The run's start (unix ms) and the tagged interval lines of a log written by `write_interval_log`."""
    start_ms = 0
    lines: list[LogLine] = []
    with path.open(encoding="utf-8") as log:
        for raw in log:
            text = raw.strip()
            if text.startswith("#[StartTime:"):
                start_ms = round(float(text.split()[1]) * 1000.0)
                continue
            match = _LINE.match(text)
            if match:
                tag, offset, duration, _max, blob = match.groups()
                lines.append(LogLine(tag, float(offset), float(duration), blob))
    return start_ms, lines


def records_from_log(path: Path, run_id: str = "") -> list[IntervalRecord]:
    """Interval records holding the log's histograms (the counters are not in a log)."""
    start_ms, lines = read_interval_log(path)
    # (worker, interval start) -> (interval length, {"latency_corrected": blob, ...})
    merged: dict[tuple[str, float], tuple[float, dict[str, str]]] = {}
    for line in lines:
        _, blobs = merged.setdefault((line.worker_id, line.offset_s), (line.duration_s, {}))
        blobs[f"latency_{line.kind}"] = line.blob
    records = []
    seqs: dict[str, int] = {}
    for (worker_id, offset_s), (duration_s, blobs) in sorted(merged.items(), key=lambda item: (item[0][1], item[0][0])):
        seq = seqs.get(worker_id, 0)
        seqs[worker_id] = seq + 1
        records.append(
            IntervalRecord(
                worker_id=worker_id,
                seq=seq,
                run_id=run_id,
                offset_s=offset_s,
                duration_s=duration_s,
                start_unix_ms=start_ms + round(offset_s * 1000.0) if start_ms else 0,
                latency_corrected=blobs.get("latency_corrected", ""),
                latency_uncorrected=blobs.get("latency_uncorrected", ""),
            )
        )
    return records
