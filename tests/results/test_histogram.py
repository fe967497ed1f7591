"""LatencyHistogram against hdrh (HdrHistogram_py): the wire format, merging, clamping, queries."""

from __future__ import annotations

import base64
import itertools
import threading
import weakref
import zlib

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from meshload.results.histogram import (
    ENCODE_LEVEL,
    ENCODE_STEP_BYTES,
    HIGHEST_TRACKABLE_US,
    LOWEST_DISCERNIBLE_US,
    RECORD_ENCODE_LEVEL,
    SIGNIFICANT_FIGURES,
    SMALL_VALUES,
    LatencyHistogram,
    StretchCounts,
    decode_counts,
)

from .conftest import histogram_of

# Encoded by hdrh 0.10 (HdrHistogram(1, 2 h in µs, 3)) after recording 100 µs x500, 1,000 µs x400,
# 10,000 µs x99 and 1,000,000 µs x1. Expected values are HdrHistogram's highest equivalent values:
# exact below 2,048 µs; 10,000 lies in a bucket 8 µs wide (10,000-10,007); 1,000,000 in one 512 µs
# wide (999,936-1,000,447).
GOLDEN_HDRH_BLOB = "HISTFAAAAC94nJNpmSzMwMDAzwABzFCaEYTXqnsw2H+ACBxnfMHeyreA7aPxMcbfWUwAssAJ6A=="
GOLDEN_PERCENTILES_US = {50.0: 100, 90.0: 1000, 99.0: 10007, 99.9: 10007, 100.0: 1000447}

# The standard HdrHistogram test blobs (from HdrHistogram_py's test/test_hdrh_dump.py): another
# implementation's encoding with another range (1 µs to 10 s). Highest equivalent values of each
# recorded value, as hdrh reports them.
FOREIGN_RANGE_BLOBS = {
    "HISTFAAAACF4nJNpmSzMwMDAzAABMJoRTM6Y1mD/ASLwN5oJAFuQBYU=": [28671],
    "HISTFAAAACh4nJNpmSzMwMDAyQABzFCaEUzOmNZg/wEisL2Kaasc00ImJgCC8Qbe": [108351, 407807, 445183],
}

CHECKED_PERCENTILES = (0.0, 1.0, 25.0, 50.0, 75.0, 90.0, 99.0, 99.9, 99.99, 100.0)


def test_hdrh_decodes_ours_and_agrees_on_every_count(rng: np.random.Generator) -> None:
    values = np.concatenate(
        [rng.lognormal(np.log(2500.0), 1.2, 20_000), rng.integers(1, 10, 50), [3_600_000_000]]
    ).astype(np.int64)
    ours = histogram_of(values)

    theirs = HdrHistogram.decode(ours.encode().encode("ascii"))

    assert theirs.get_total_count() == values.size == ours.total_count
    their_counts = np.ctypeslib.as_array(theirs.counts)
    assert np.array_equal(their_counts[: ours.counts_array().size], ours.counts_array())
    assert not their_counts[ours.counts_array().size :].any()
    for percentile in CHECKED_PERCENTILES:
        assert ours.value_at_percentile(percentile) == theirs.get_value_at_percentile(percentile), percentile
    assert ours.mean_us() == pytest.approx(theirs.get_mean_value(), rel=1e-9)
    assert ours.stddev_us() == pytest.approx(theirs.get_stddev(), rel=1e-9)
    # One value recorded through hdrh's own (scalar) path lands in the same counter as ours.
    single = HdrHistogram(LOWEST_DISCERNIBLE_US, HIGHEST_TRACKABLE_US, SIGNIFICANT_FIGURES)
    for value in values[:500].tolist():
        single.record_value(value)
    assert (
        LatencyHistogram.decode(single.encode()).counts_array().tolist()
        == histogram_of(values[:500]).counts_array().tolist()
    )


def test_small_values_and_batches_over_them_land_in_hdrhs_own_counters(rng: np.random.Generator) -> None:
    # Small values take their counter from a table; a batch with any larger value is computed.
    hdr = HdrHistogram(LOWEST_DISCERNIBLE_US, HIGHEST_TRACKABLE_US, SIGNIFICANT_FIGURES)
    every_small = np.arange(SMALL_VALUES, dtype=np.int64)
    ours = histogram_of(every_small)
    expected = np.zeros_like(ours.counts_array())
    for value in every_small.tolist():
        expected[hdr.get_counts_array_index(value)] += 1
    assert np.array_equal(ours.counts_array(), expected)

    mixed = np.concatenate([rng.integers(0, SMALL_VALUES, 2_000), [SMALL_VALUES, SMALL_VALUES + 513]])
    one_by_one = HdrHistogram(LOWEST_DISCERNIBLE_US, HIGHEST_TRACKABLE_US, SIGNIFICANT_FIGURES)
    for value in mixed.tolist():
        one_by_one.record_value(value)
    assert LatencyHistogram.decode(one_by_one.encode()).counts_array().tolist() == (
        histogram_of(mixed).counts_array().tolist()
    )


def test_our_encoding_carries_hdrhs_payload_byte_for_byte(rng: np.random.Generator) -> None:
    histograms = [
        LatencyHistogram(),
        histogram_of(np.array([5], dtype=np.int64)),
        # A payload of several compression steps.
        histogram_of(rng.lognormal(np.log(300.0), 2.0, 50_000).astype(np.int64)),
        histogram_of(np.concatenate([rng.integers(1, 1_000, 500), [HIGHEST_TRACKABLE_US]])),
    ]
    assert len(payload_of(histograms[2].hdr.encode())) > 2 * ENCODE_STEP_BYTES
    # Twice: the reused buffer holds nothing of the previous one. Reports' level and records' stored
    # blocks (level 0) alike.
    for histogram, level in itertools.product(histograms * 2, (ENCODE_LEVEL, RECORD_ENCODE_LEVEL)):
        ours = histogram.encode(level)
        # Only the zlib level differs from hdrh's: the header and the payload are the same bytes.
        assert base64.b64decode(ours)[:4] == base64.b64decode(histogram.hdr.encode())[:4]
        assert payload_of(ours) == payload_of(histogram.hdr.encode())
        assert HdrHistogram.decode(ours.encode("ascii")).get_total_count() == histogram.total_count
        assert LatencyHistogram.decode(ours).counts_array().tolist() == histogram.counts_array().tolist()
        decoded = decode_counts(ours)
        assert decoded.total_count == histogram.total_count
        from_counts = LatencyHistogram()
        from_counts.add_counts(decoded)
        assert from_counts.counts_array().tolist() == histogram.counts_array().tolist()


def test_record_blobs_are_stored_whole_and_decode_to_the_same_counts(rng: np.random.Generator) -> None:
    """Records' blobs are stored, not deflated: longer, and the same counts."""
    histogram = histogram_of(rng.lognormal(np.log(2_000.0), 0.6, 500).astype(np.int64))
    compressed, stored = histogram.encode(ENCODE_LEVEL), histogram.encode(RECORD_ENCODE_LEVEL)
    assert len(stored) > len(compressed)
    assert len(base64.b64decode(stored)) >= len(payload_of(stored))  # no deflate: the payload whole
    assert decode_counts(stored).counts.tolist() == decode_counts(compressed).counts.tolist()


def test_an_encoding_compresses_a_bounded_number_of_bytes_per_step(rng: np.random.Generator) -> None:
    histogram = histogram_of(rng.lognormal(np.log(300.0), 2.0, 50_000).astype(np.int64))
    steps = histogram.encode_steps()
    taken = 0
    while True:
        try:
            next(steps)
        except StopIteration as end:
            blob = end.value
            break
        taken += 1
    assert blob == histogram.encode()
    assert taken >= len(payload_of(blob)) // ENCODE_STEP_BYTES >= 2


def payload_of(blob: str | bytes) -> bytes:
    """The decompressed payload of a V2 blob (after its 8-byte compression header)."""
    return zlib.decompress(base64.b64decode(blob)[8:])


def test_golden_hdrh_blob_decodes_in_ours() -> None:
    for decode in (LatencyHistogram.decode, _decode_via_counts):
        histogram = decode(GOLDEN_HDRH_BLOB)
        assert histogram.total_count == 1000
        assert histogram.values_at_percentiles(GOLDEN_PERCENTILES_US) == GOLDEN_PERCENTILES_US
        assert histogram.min_us == 100
        assert histogram.buckets()[0] == (100, 100, 500)
        assert histogram.buckets()[-1] == (999_936, 1_000_447, 1)


def _decode_via_counts(blob: str) -> LatencyHistogram:
    histogram = LatencyHistogram()
    histogram.add_counts(decode_counts(blob))
    return histogram


def test_blobs_with_another_range_decode_in_place() -> None:
    for blob, highest_values in FOREIGN_RANGE_BLOBS.items():
        for decode in (LatencyHistogram.decode, _decode_via_counts):
            histogram = decode(blob)
            assert histogram.total_count == len(highest_values)
            assert [high for _, high, _ in histogram.buckets()] == highest_values
            assert histogram.value_at_percentile(100) == highest_values[-1]
            assert decode_counts(blob).foreign is None  # same layout: no re-recording needed


def test_foreign_settings_are_re_recorded_at_our_resolution() -> None:
    foreign = HdrHistogram(1, 3_600_000_000, 2)  # two significant figures, one hour
    for value, count in ((150, 10), (15_000, 5), (2_000_000, 1)):
        foreign.record_value(value, count)

    decoded = decode_counts(foreign.encode())
    ours = _decode_via_counts(foreign.encode().decode("ascii"))

    assert decoded.foreign is not None
    assert ours.total_count == 16
    assert ours.value_at_percentile(50) == pytest.approx(150, rel=0.01)
    assert ours.max_us == pytest.approx(2_000_000, rel=0.01)


def test_merged_worker_histograms_equal_one_histogram_of_all_samples(rng: np.random.Generator) -> None:
    # Different workers see different latency distributions; merging must not average anything.
    workers = [
        rng.lognormal(np.log(1000.0 * (w + 1)), 0.3 + 0.2 * w, 3000 + 500 * w).astype(np.int64) for w in range(5)
    ]
    one = histogram_of(np.concatenate(workers))
    by_add = LatencyHistogram()
    by_blob = LatencyHistogram()
    for samples in workers:
        part = histogram_of(samples)
        by_add.add(part)
        by_blob.decode_and_add(part.encode())

    for merged in (by_add, by_blob):
        assert np.array_equal(merged.counts_array(), one.counts_array())
        assert merged.values_at_percentiles(CHECKED_PERCENTILES) == one.values_at_percentiles(CHECKED_PERCENTILES)
        assert merged.total_count == one.total_count
        assert merged.encode() == one.encode()
    # Averaging the workers' p99s would be wrong by far: the merge is not that.
    average_p99 = np.mean([histogram_of(s).value_at_percentile(99) for s in workers])
    assert abs(one.value_at_percentile(99) - average_p99) > 0.05 * average_p99


def test_stretch_counts_answer_as_the_full_histogram_of_the_same_blobs(rng: np.random.Generator) -> None:
    # Stretches that overlap, lie apart (below and above what is kept), an empty one and a foreign
    # one: the kept stretch grows both ways and every percentile is the full histogram's.
    parts = [
        rng.lognormal(np.log(500.0), 0.4, 800).astype(np.int64),
        rng.lognormal(np.log(50_000.0), 0.2, 300).astype(np.int64),
        rng.integers(1, 40, 200),
        np.zeros(0, dtype=np.int64),
        rng.lognormal(np.log(800.0), 1.5, 1000).astype(np.int64),
    ]
    full = LatencyHistogram()
    stretch = StretchCounts()
    assert stretch.value_at_percentile(99) == 0
    for values in parts:
        blob = histogram_of(values).encode()
        full.decode_and_add(blob)
        stretch.add_counts(decode_counts(blob))
    foreign = HdrHistogram(1, 3_600_000_000, 2)
    foreign.record_value(2_000_000, 3)
    full.decode_and_add(foreign.encode())
    stretch.add_counts(decode_counts(foreign.encode()))

    assert stretch.total_count == full.total_count
    assert stretch.counts.size < full.counts_array().size // 2
    for percentile in CHECKED_PERCENTILES:
        assert stretch.value_at_percentile(percentile) == full.value_at_percentile(percentile)


def test_out_of_range_values_are_clamped_and_counted() -> None:
    ten_hours_us = 10 * 3600 * 1_000_000  # beyond even the top of the last bucket (~2.4 h)
    histogram = histogram_of(np.array([-5, 10, ten_hours_us, 2 * ten_hours_us], dtype=np.int64))

    assert histogram.total_count == 4
    assert histogram.clamped == 2  # both above the range; the negative one counts as 0
    assert histogram.min_us == 0
    assert histogram.max_us >= HIGHEST_TRACKABLE_US
    assert histogram.value_at_percentile(100) == histogram.max_us
    copy = histogram.copy()
    assert copy.clamped == 2 and copy.total_count == 4


def test_decode_counts_of_empty_and_malformed_blobs() -> None:
    assert decode_counts("").total_count == 0
    empty = LatencyHistogram().encode()
    assert decode_counts(empty).total_count == 0
    truncated = GOLDEN_HDRH_BLOB[:16]
    for bad in ("not base64 at all!", "SElTVA==", truncated):
        with pytest.raises(ValueError):
            decode_counts(bad)


def test_a_dropped_histogram_is_freed_at_once(no_cyclic_collector: None) -> None:
    # hdrh's encoder points back at its histogram: a cycle that held each dropped histogram's 200 KB
    # of counters until a full collection (each checkpoint's result copies piled up in a soak).
    recorded = histogram_of(np.array([100, 1_000, 10_000]))
    histograms = [LatencyHistogram(), recorded.copy(), LatencyHistogram.decode(recorded.encode())]
    counters = [weakref.ref(histogram.hdr) for histogram in histograms]

    del histograms

    assert [counter() for counter in counters] == [None, None, None]
    assert LatencyHistogram.decode(recorded.encode()).total_count == 3  # encoding still reaches its histogram


def test_decoding_reuses_no_state_between_blobs(rng: np.random.Generator) -> None:
    # The decoder's scratch array must be clean after each call: decode a wide blob, then a narrow one.
    wide = histogram_of(rng.integers(1, 5_000_000, 5000))
    narrow = histogram_of(np.full(7, 42))
    decode_counts(wide.encode())
    again = _decode_via_counts(narrow.encode())
    assert again.total_count == 7
    assert again.buckets() == [(42, 42, 7)]


def test_percentile_queries_match_hdrh_for_many_percentiles(rng: np.random.Generator) -> None:
    values = rng.pareto(1.5, 10_000) * 1000 + 1
    ours = histogram_of(values.astype(np.int64))
    theirs = HdrHistogram.decode(ours.encode())
    percentiles = [float(p) for p in np.linspace(0, 100, 81)] + [99.9, 99.99, 99.999]
    expected = {p: theirs.get_value_at_percentile(p) for p in percentiles}
    assert ours.values_at_percentiles(percentiles) == expected
    assert ours.percentiles_ms()["99.9"] == expected[99.9] / 1000.0


def test_decoding_in_several_threads_at_once_is_exact(rng: np.random.Generator) -> None:
    blobs = [histogram_of(rng.integers(1 + 1000 * i, 50_000 * (i + 1), 2000)) for i in range(4)]
    expected = [blob.counts_array().copy() for blob in blobs]
    encoded = [blob.encode() for blob in blobs]
    mismatches: list[int] = []

    def decode_many(index: int) -> None:
        for _ in range(150):
            if not np.array_equal(_decode_via_counts(encoded[index]).counts_array(), expected[index]):
                mismatches.append(index)

    threads = [threading.Thread(target=decode_many, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert mismatches == []
