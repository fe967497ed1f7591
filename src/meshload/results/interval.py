"""Interval records: what one worker measured during one second of a run.

A worker publishes one record per interval (one second by default). Records are deltas: counts and
histograms cover only that interval, so the coordinator merges them by addition. `(worker_id, seq)`
identifies a record; a record seen twice is counted once.

Histograms travel as standard HdrHistogram base64 blobs (`LatencyHistogram.encode`), so any
HdrHistogram tool can read a record; their zlib streams are stored blocks (`RECORD_ENCODE_LEVEL`),
the coordinator's cheapest to decode. Times: `start_unix_ms` is wall-clock (for reports);
`offset_s` is the interval's start relative to the run's common start instant, from monotonic clocks.
"""

from __future__ import annotations

import msgspec

#: Error kinds a request can end in instead of an HTTP response. Engines count by these names.
ERROR_KINDS: tuple[str, ...] = (
    "connect_refused",  # TCP connect refused (nothing listening)
    "connect_timeout",  # TCP/TLS connect did not finish in time
    "connect_error",  # other connect failure (unreachable, DNS, ...)
    "tls_error",  # TLS handshake or certificate failure
    "reset",  # connection reset / closed before a full response
    "timeout",  # no full response within the request timeout
    "malformed",  # response that is not valid HTTP
    "not_sent",  # planned but never sent (no connection could be had before the run ended)
    "other",  # any other failure a client reported without a response (a Locust request event's exception)
)


#: gRPC status codes by number (grpc/status.h), as records and reports name them.
GRPC_STATUS_NAMES: tuple[str, ...] = (
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)


def is_failed_status(status: str) -> bool:
    """Whether a response with this status failed from the client's view: an HTTP status >= 400, or
    any gRPC status but OK."""
    if status.isdigit():
        return int(status) >= 400
    return status != "OK"


def is_grpc_status(status: str) -> bool:
    return status in GRPC_STATUS_NAMES


class NameInterval(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One request name's part of an interval record (a Locust request `name`): counts are included in
    the record's totals, histograms hold the same responses as the record's, split by name."""

    completed: int = 0  # responses (any status)
    errors: int = 0  # transport errors (their kinds are in the record's `errors`)
    failures: int = 0  # requests the load tool itself counted as failed (Locust: the event had an exception)
    latency_corrected: str = ""  # HdrHistogram base64 blob, microseconds, as in IntervalRecord
    latency_uncorrected: str = ""


class IntervalRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One worker's measurements for one interval; every count is for this interval only."""

    worker_id: str
    seq: int  # 0, 1, 2, ... per worker and run; with worker_id, the record's identity
    run_id: str = ""
    offset_s: float  # interval start, seconds after the run's common start instant
    duration_s: float  # interval length in seconds (the last one may be short)
    start_unix_ms: int = 0  # interval start, wall clock, for timestamps in reports
    warmup: bool = False  # inside the warm-up: reported, excluded from the statistics
    sent: int = 0  # requests written to a connection
    completed: int = 0  # responses received (any status)
    status_codes: dict[str, int] = {}  # HTTP {"200": n, "503": m}; gRPC {"OK": n, "UNAVAILABLE": m}
    errors: dict[str, int] = {}  # {kind: n}, kinds from ERROR_KINDS
    bytes_received: int = 0
    late: int = 0  # sends whose lag exceeded the late threshold
    missed: int = 0  # planned sends that were never made
    clamped: int = 0  # latencies above the histograms' range, recorded at its top
    cpu_seconds: float = 0.0  # user+system CPU of the worker process in this interval
    # Of `cpu_seconds`, the loop passes that only polled for a planned instant too near to sleep for:
    # waiting, not the generator's load (see `worker.engines.pacing`).
    spin_seconds: float = 0.0
    # CPU of the worker's fold process in this interval (an engine at a high rate folds its histograms
    # there, on another core: not part of `cpu_seconds`, the process that paces the sends).
    fold_cpu_seconds: float = 0.0
    clock_offset_ms: float = 0.0  # worker clock minus Redis server clock, as last measured
    # Standard HdrHistogram base64 blobs, microseconds:
    latency_corrected: str = ""  # planned instant -> response complete
    latency_uncorrected: str = ""  # actual send -> response complete
    schedule_lag: str = ""  # actual send - planned instant
    names: dict[str, NameInterval] = {}  # per request name, when the worker records names (Locust)
    # Connections opened (HTTP/1.1) and how long their set-up took, microseconds: kept apart from the
    # schedule lag, since a target that closes its connections chooses that cost, not the generator.
    connects: int = 0
    connect_us_total: int = 0
    connect_us_max: int = 0
    final: bool = False  # the worker's last record for this run


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(IntervalRecord)


def encode_record(record: IntervalRecord) -> bytes:
    """Compact binary form of a record (msgpack)."""
    return _encoder.encode(record)


def decode_record(data: bytes) -> IntervalRecord:
    """Inverse of `encode_record`; raises `msgspec.DecodeError` on a malformed record."""
    return _decoder.decode(data)
