"""The frames between a worker's engine and its fold process (`worker.fold_process`).

Each frame is a header (`HEADER`: kind, the interval's sequence number, the payload's length) and a
payload. Engine to fold process, on the child's stdin: `INIT` (JSON: how statuses are named, the late
threshold), `FOLD` (responses of interval `seq`: four int64 arrays of equal length, one after the
other: planned, sent and done instants in monotonic ns, statuses), `CUT` (interval `seq` is closed:
msgpack of its record, counters filled in, and the schedule lags in µs of its requests that ended in
an error after being sent), `SOCKETS` (interval `seq` is closed: msgpack of the engine's sockets
opened and closed since the last cut, `socket_bytes.SocketEvents`; sent at the cut, ahead of its
`CUT`, for the fold process to count the interval's bytes received). Fold process to engine, on the
child's stdout: `RECORD` (interval `seq`'s complete record, `encode_record`) or `FAILED` (one line
saying what went wrong, the child's last frame).
"""

from __future__ import annotations

import struct

import msgspec
import numpy as np

from ..results.interval import IntervalRecord

HEADER = struct.Struct("<cII")
INIT = b"I"
FOLD = b"F"
CUT = b"C"
SOCKETS = b"S"
RECORD = b"R"
FAILED = b"E"

_cut_encoder = msgspec.msgpack.Encoder()
_cut_decoder = msgspec.msgpack.Decoder(tuple[IntervalRecord, list[int]])
_SocketList = list[tuple[int, int]]
_sockets_decoder = msgspec.msgpack.Decoder(tuple[_SocketList, _SocketList])


def header(kind: bytes, seq: int, length: int) -> bytes:
    return HEADER.pack(kind, seq, length)


def encode_cut(record: IntervalRecord, error_lags_us: list[int]) -> bytes:
    return _cut_encoder.encode((record, error_lags_us))


def decode_cut(payload: bytes) -> tuple[IntervalRecord, list[int]]:
    return _cut_decoder.decode(payload)


def encode_sockets(opened: list[tuple[int, int]], closed: list[tuple[int, int]]) -> bytes:
    return _cut_encoder.encode((opened, closed))


def decode_sockets(payload: bytes) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    return _sockets_decoder.decode(payload)


def fold_columns(payload: bytes | memoryview) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A `FOLD` payload's (planned, sent, done, statuses) columns, without copying."""
    values = np.frombuffer(payload, dtype=np.int64)
    n = len(values) // 4
    return values[:n], values[n : 2 * n], values[2 * n : 3 * n], values[3 * n :]
