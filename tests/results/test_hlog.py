"""histograms.hlog: an HdrHistogram interval log that hdrh's reader reads back."""

from __future__ import annotations

from pathlib import Path

from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

from meshload.results.histogram import LatencyHistogram
from meshload.results.hlog import log_tag, read_interval_log, records_from_log, write_interval_log
from meshload.results.run_result import RunResult

from .conftest import START_UNIX_MS


def test_hdrh_reads_every_interval_back_with_the_same_counts(finished_result: RunResult, tmp_path: Path) -> None:
    path = tmp_path / "histograms.hlog"
    records = finished_result.records

    lines = write_interval_log(records, path)

    assert lines == 2 * len(records) == 30
    reader = HistogramLogReader(str(path), HdrHistogram(1, 2 * 3600 * 1_000_000, 3))
    read = []
    while (histogram := reader.get_next_interval_histogram()) is not None:
        read.append(histogram)
    reader.close()
    assert len(read) == lines
    assert reader.get_start_time_sec() == START_UNIX_MS / 1000.0
    expected = {}
    for record in records:
        expected[(log_tag(record.worker_id, "corrected"), record.offset_s)] = record.latency_corrected
        expected[(log_tag(record.worker_id, "uncorrected"), record.offset_s)] = record.latency_uncorrected
    for histogram in read:
        tag = histogram.get_tag()
        assert "," not in tag and " " not in tag
        offset_s = round(histogram.get_start_time_stamp() / 1000.0 - START_UNIX_MS / 1000.0, 3)
        ours = LatencyHistogram.decode(expected[(tag, offset_s)])
        assert histogram.get_total_count() == ours.total_count
        assert histogram.get_value_at_percentile(99) == ours.value_at_percentile(99)
    tags = {h.get_tag() for h in read}
    assert tags == {
        f"{w}.{kind}" for w in ("worker-0", "worker_1_odd", "worker-2") for kind in ("corrected", "uncorrected")
    }


def test_log_round_trips_into_records(finished_result: RunResult, tmp_path: Path) -> None:
    path = tmp_path / "histograms.hlog"
    write_interval_log(finished_result.records, path)

    start_ms, lines = read_interval_log(path)
    rebuilt = records_from_log(path, "again")

    assert start_ms == START_UNIX_MS
    assert len(lines) == 30 and len(rebuilt) == 15
    merged = LatencyHistogram()
    for record in rebuilt:
        if not any(o.offset_s == record.offset_s and o.warmup for o in finished_result.records):
            merged.decode_and_add(record.latency_corrected)
    assert merged.encode() == finished_result.corrected.encode()
    assert {r.run_id for r in rebuilt} == {"again"}
    assert rebuilt[0].start_unix_ms == START_UNIX_MS


def test_max_column_is_the_interval_max_in_milliseconds(finished_result: RunResult, tmp_path: Path) -> None:
    path = tmp_path / "histograms.hlog"
    write_interval_log(finished_result.records[:1], path)

    line = next(text for text in path.read_text().splitlines() if text.startswith("Tag="))
    max_ms = float(line.split(",")[3])

    assert max_ms == round(LatencyHistogram.decode(finished_result.records[0].latency_corrected).max_us / 1000.0, 3)
