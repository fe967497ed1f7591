"""A worker's fold process: the histograms of an engine's intervals, kept off the core that paces.

An engine on an event loop at a high rate ships its buffered responses here as raw arrays
(`worker.fold_frames`) instead of folding them into HDR histograms itself; at each cut it sends the
interval's counters, and this process folds, encodes and sends back the complete record. What stays
on the engine's loop is converting the buffered integers and one write per 4,096 responses; the
histogram batches, the status counts and the compression of three histograms per interval (the
pieces of a cut that showed in the schedule lag) run here, on another core where there is one; so
does reading the bytes the engine's connections received, one `sock_diag` dump per cut instead of a
system call per connection on the loop (`worker.socket_bytes`).

Run as `python -m meshload.worker.fold_main` (which starts it light) with the frames on stdin and the
replies on stdout; the end of stdin ends it. Anything unexpected is sent back as a `FAILED` frame before it exits.
"""

from __future__ import annotations

import json
import os
import sys
from typing import BinaryIO

import numpy as np

from ..results.histogram import LatencyHistogram
from ..results.interval import encode_record
from . import fold_frames as frames
from .cpu import process_cpu_seconds
from .recorder import completion_steps, exhaust, fold_instants_steps, new_status_counts
from .socket_bytes import SocketBytes

_READ_BUFFER = 1 << 20


class _Interval:
    """One interval's histograms (corrected, uncorrected, lag), status counts and late sends."""

    __slots__ = ("histograms", "late", "status_counts")

    def __init__(self) -> None:
        self.histograms = (LatencyHistogram(), LatencyHistogram(), LatencyHistogram())
        self.status_counts = new_status_counts()
        self.late = 0


class Folder:
    """The state of one engine run: the open intervals (at most two at once: the one being closed and
    the next), and a free one kept for reuse (building a histogram is slow)."""

    def __init__(self, status_names: tuple[str, ...], late_threshold_us: int) -> None:
        self.status_names = status_names
        self.late_threshold_us = late_threshold_us
        self._open: dict[int, _Interval] = {}
        self._free: list[_Interval] = []
        self._cpu_mark_s = process_cpu_seconds()
        self._sockets: SocketBytes | None = None  # when the engine's sockets are counted here
        self._socket_bytes: dict[int, int] = {}  # interval seq: bytes its sockets received

    def count_sockets(self, seq: int, payload: bytes) -> None:
        """Interval `seq` was just cut: count the bytes its sockets received (see `socket_bytes`)."""
        if self._sockets is None:
            self._sockets = SocketBytes()
        self._socket_bytes[seq] = self._sockets.count(*frames.decode_sockets(payload))

    def fold(self, seq: int, payload: bytes) -> None:
        interval = self._interval(seq)
        planned, sent, done, statuses = frames.fold_columns(payload)
        steps = fold_instants_steps(
            planned, sent, done, statuses, interval.histograms, interval.status_counts, self.late_threshold_us
        )
        interval.late += exhaust(steps)

    def cut(self, seq: int, payload: bytes) -> bytes:
        """Interval `seq`'s complete record, encoded."""
        record, error_lags_us = frames.decode_cut(payload)
        interval = self._open.pop(seq, None) or self._new()
        record.bytes_received += self._socket_bytes.pop(seq, 0)
        if error_lags_us:
            interval.histograms[2].record_batch(np.asarray(error_lags_us, dtype=np.int64))
        for _ in completion_steps(
            record, interval.histograms, interval.status_counts, record.late + interval.late, self.status_names
        ):
            pass
        cpu_now_s = process_cpu_seconds()
        record.fold_cpu_seconds = round(cpu_now_s - self._cpu_mark_s, 6)
        self._cpu_mark_s = cpu_now_s
        interval.status_counts[:] = 0
        interval.late = 0
        self._free.append(interval)
        return encode_record(record)

    def close(self) -> None:
        if self._sockets is not None:
            self._sockets.close()

    def _interval(self, seq: int) -> _Interval:
        interval = self._open.get(seq)
        if interval is None:
            interval = self._open[seq] = self._new()
        return interval

    def _new(self) -> _Interval:
        return self._free.pop() if self._free else _Interval()


def serve(reader: BinaryIO, writer: BinaryIO) -> None:
    """Answer the frames of `reader` on `writer` until `reader` ends."""
    folder: Folder | None = None
    try:
        while True:
            head = reader.read(frames.HEADER.size)
            if len(head) < frames.HEADER.size:
                return  # the engine closed the channel: the run is over
            kind, seq, length = frames.HEADER.unpack(head)
            payload = reader.read(length)
            if len(payload) < length:
                return
            if kind == frames.INIT:
                settings = json.loads(payload)
                folder = Folder(tuple(settings["status_names"]), int(settings["late_threshold_us"]))
            elif folder is None:
                raise ValueError("the first frame was not INIT")
            elif kind == frames.FOLD:
                folder.fold(seq, payload)
            elif kind == frames.SOCKETS:
                folder.count_sockets(seq, payload)
            elif kind == frames.CUT:
                reply = folder.cut(seq, payload)
                writer.write(frames.header(frames.RECORD, seq, len(reply)) + reply)
                writer.flush()
            else:
                raise ValueError(f"unknown frame kind {kind!r}")
    finally:
        if folder is not None:
            folder.close()


def main() -> int:
    reader = os.fdopen(sys.stdin.fileno(), "rb", buffering=_READ_BUFFER, closefd=False)
    writer = os.fdopen(sys.stdout.fileno(), "wb", buffering=0, closefd=False)
    try:
        serve(reader, writer)
    except Exception as exc:  # noqa: BLE001 - whatever went wrong goes back to the engine, which fails the run
        line = f"the fold process failed: {type(exc).__name__}: {exc}".encode()
        writer.write(frames.header(frames.FAILED, 0, len(line)) + line)
        return 1
    return 0
