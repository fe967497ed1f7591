"""Interval records on the wire."""

from __future__ import annotations

import msgspec
import pytest

from meshload.results.histogram import LatencyHistogram
from meshload.results.interval import IntervalRecord, decode_record, encode_record

from .conftest import MakeRecord


def test_record_round_trips_and_omits_defaults(make_record: MakeRecord) -> None:
    record = make_record("worker-1", 3, completed=250, errors={"reset": 2}, clamped=1, final=True)

    data = encode_record(record)
    back = decode_record(data)

    assert back == record
    assert back.clamped == 1 and back.final and back.errors == {"reset": 2}
    assert LatencyHistogram.decode(back.latency_corrected).total_count == 250
    bare = encode_record(IntervalRecord(worker_id="w", seq=0, offset_s=0.0, duration_s=1.0))
    assert b"clamped" not in bare and b"final" not in bare  # defaults cost nothing on the wire


def test_malformed_record_is_refused() -> None:
    with pytest.raises(msgspec.DecodeError):
        decode_record(b"\x81\xa3foo\x01")
    with pytest.raises(msgspec.DecodeError):
        decode_record(msgspec.msgpack.encode({"worker_id": "w", "seq": "zero", "offset_s": 0.0, "duration_s": 1.0}))
