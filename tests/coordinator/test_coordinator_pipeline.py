"""The Redis pipeline piece by piece, against real redis-servers: keys and connections (wire), the
private redis-server, the record publisher (including a Redis outage) and the consumer-group
collector (pending re-read after a restart, claiming a dead consumer's entries, BUSYGROUP only)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import redis

from meshload.coordinator.redis_server import PrivateRedis
from meshload.errors import RedisError
from meshload.pipeline import wire
from meshload.pipeline.collector import StreamCollector
from meshload.pipeline.publisher import RecordPublisher
from meshload.results.aggregate import RunAggregator
from meshload.results.histogram import LatencyHistogram
from meshload.results.interval import IntervalRecord, encode_record
from meshload.scenarios.plan import OpenLoop, Plan, Target

PLAN = Plan(targets=(Target(url="http://127.0.0.1:9/"),), load=OpenLoop(rate=100), duration_s=10)


def make_record(
    worker_id: str, seq: int, run_id: str = "r1", requests: int = 100, final: bool = False
) -> IntervalRecord:
    rng = np.random.default_rng(seq)
    histogram = LatencyHistogram()
    histogram.record_batch(rng.integers(200, 5_000, requests))
    blob = histogram.encode()
    return IntervalRecord(
        worker_id=worker_id,
        seq=seq,
        run_id=run_id,
        offset_s=float(seq),
        duration_s=1.0,
        sent=requests,
        completed=requests,
        status_codes={"200": requests},
        latency_corrected=blob,
        latency_uncorrected=blob,
        schedule_lag=LatencyHistogram().encode(),
        final=final,
    )


def add_entries(client: redis.Redis, keys: wire.RunKeys, records: list[IntervalRecord]) -> None:
    for record in records:
        client.xadd(keys.records, {wire.RECORD_FIELD: encode_record(record)})


def test_keys_are_namespaced_per_run_and_worker() -> None:
    one, two = wire.RunKeys("a"), wire.RunKeys("b")
    assert set(one.all()).isdisjoint(two.all())
    assert len(set(one.all())) == 6
    assert all(key.startswith(wire.KEY_PREFIX + ":") for key in one.all())
    assert wire.assignment_key("w1") != wire.assignment_key("w2")
    assert wire.redacted("redis://:hunter2@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert "hunter2" not in wire.redacted("rediss://user:hunter2@host:1/0")


def test_passwords_and_unreachable_servers_give_one_clear_line() -> None:
    from tests.support.redis_server import RedisServer, free_port

    with RedisServer(password="right") as guarded:
        wire.open_redis(guarded.url).close()
        with pytest.raises(RedisError, match="refused the password") as wrong:
            wire.open_redis(guarded.url_with_password("wrong"))
        assert "wrong" not in str(wrong.value) and "\n" not in str(wrong.value)
        with pytest.raises(RedisError, match="needs a password"):
            wire.open_redis(f"redis://127.0.0.1:{guarded.port}/0")
    with pytest.raises(RedisError, match="cannot reach Redis"):
        wire.open_redis(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(RedisError, match="not a Redis URL"):
        wire.open_redis("http://127.0.0.1:1/")


def test_tls_redis_url_works() -> None:
    from tests.support.redis_server import RedisServer

    with RedisServer(tls=True, password="tlspw") as server:
        client = wire.open_redis(server.url)
        assert client.ping()
        # Clocks of one host agree with Redis TIME within a few milliseconds.
        assert abs(wire.measure_clock_offset_ms(client)) < 20.0
        client.close()


def test_private_redis_lives_on_a_unix_socket_and_goes_away() -> None:
    private = PrivateRedis()
    url = private.start()
    assert url.startswith("unix://") and private.socket_path.exists()
    client = wire.open_redis(url)
    assert client.ping() and client.config_get("port")["port"] == "0"  # no TCP port at all
    client.close()
    process = private._process
    private.stop()
    assert process is not None and process.poll() is not None
    assert not private.folder.exists()


def test_private_redis_without_redis_server_says_how_to_install(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH where redis-server really is absent
    with pytest.raises(RedisError, match=r"apt-get install redis-server"):
        PrivateRedis().start()


def test_collector_acks_in_batches_rereads_its_pending_list_and_counts_once(redis_server) -> None:
    client = redis_server.client()
    keys = wire.RunKeys("r1")
    first = StreamCollector(client, keys, consumer="c1")
    first.ensure_group()
    first.ensure_group()  # BUSYGROUP is tolerated
    records = [make_record("w0", seq) for seq in range(5)] + [make_record("w1", seq) for seq in range(5)]
    add_entries(client, keys, records)
    # A coordinator reads entries, then dies before acknowledging them.
    client.xreadgroup(wire.CONSUMER_GROUP, "c1", {keys.records: ">"}, count=4)
    assert client.xpending(keys.records, wire.CONSUMER_GROUP)["pending"] == 4
    # Its successor under the same name reads its own pending list first, then the rest.
    again = StreamCollector(client, keys, consumer="c1")
    got = again.collect(block_ms=100).records + again.collect(block_ms=100).records
    got += again.collect(block_ms=100).records
    assert sorted((r.worker_id, r.seq) for r in got) == sorted((r.worker_id, r.seq) for r in records)
    assert client.xpending(keys.records, wire.CONSUMER_GROUP)["pending"] == 0
    assert again.acknowledged == 10
    # A record published twice (a retry after a lost reply) is merged once.
    add_entries(client, keys, [make_record("w0", 2)])
    aggregator = RunAggregator(PLAN, "r1")
    added = [aggregator.add(r) for r in got + again.collect(block_ms=100).records]
    assert added.count(True) == 10 and added.count(False) == 1
    assert aggregator.result().completed == 10 * 100
    client.close()


def test_collector_claims_entries_a_dead_consumer_left_pending(redis_server) -> None:
    client = redis_server.client()
    keys = wire.RunKeys("r1")
    StreamCollector(client, keys, consumer="dead").ensure_group()
    add_entries(client, keys, [make_record("w0", seq) for seq in range(3)])
    client.xreadgroup(wire.CONSUMER_GROUP, "dead", {keys.records: ">"})
    alive = StreamCollector(client, keys, consumer="alive", claim_idle_ms=100)
    assert alive.collect(block_ms=50).records == []  # not ours, not new
    time.sleep(0.2)
    claimed = alive.claim_idle().records
    assert [r.seq for r in claimed] == [0, 1, 2]
    assert client.xpending(keys.records, wire.CONSUMER_GROUP)["pending"] == 0
    client.close()


def test_collector_refuses_to_take_over_a_key_that_is_not_a_stream(redis_server) -> None:
    client = redis_server.client()
    keys = wire.RunKeys("r1")
    client.set(keys.records, b"something else")
    with pytest.raises(redis.exceptions.ResponseError, match=r"WRONGTYPE|requires the key to exist"):
        StreamCollector(client, keys).ensure_group()
    assert client.get(keys.records) == b"something else"
    client.close()


def test_collector_skips_malformed_entries_and_still_acks_them(redis_server) -> None:
    client = redis_server.client()
    keys = wire.RunKeys("r1")
    collector = StreamCollector(client, keys)
    collector.ensure_group()
    client.xadd(keys.records, {wire.RECORD_FIELD: b"\x93not a record"})
    add_entries(client, keys, [make_record("w0", 0)])
    batch = collector.collect(block_ms=100)
    assert batch.malformed == 1 and [r.seq for r in batch.records] == [0]
    assert client.xpending(keys.records, wire.CONSUMER_GROUP)["pending"] == 0
    client.close()


def test_publisher_sends_a_record_encoded_already_as_it_came(redis_server) -> None:
    """An engine's own process sends its records encoded: they reach the stream byte for byte, in order
    with the records handed on as records."""
    keys = wire.RunKeys("r1")
    client = redis_server.client()
    publisher = RecordPublisher(redis_server.url, keys).start()
    encoded = encode_record(make_record("w0", 0))
    publisher.submit(encoded)
    publisher.submit(make_record("w0", 1))
    assert publisher.close(timeout_s=20)
    stored = [fields[wire.RECORD_FIELD] for _, fields in client.xrange(keys.records)]
    assert stored[0] == encoded and stored[1] == encode_record(make_record("w0", 1))
    client.close()


def test_publisher_keeps_records_through_an_outage_and_delivers_each(redis_server) -> None:
    keys = wire.RunKeys("r1")
    client = redis_server.client()
    publisher = RecordPublisher(redis_server.url, keys).start()
    publisher.submit(make_record("w0", 0))
    deadline = time.monotonic() + 5
    while publisher.delivered < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    redis_server.pause()
    try:
        started = time.perf_counter()
        for seq in range(1, 6):
            publisher.submit(make_record("w0", seq))
        # Submitting never waits on Redis: the engine's loop is not held up by an outage.
        assert time.perf_counter() - started < 0.5
        time.sleep(0.5)
    finally:
        redis_server.resume()
    assert publisher.close(timeout_s=20)
    entries = client.xrange(keys.records)
    from meshload.results.interval import decode_record

    seqs = [decode_record(fields[wire.RECORD_FIELD]).seq for _, fields in entries]
    # In order, nothing lost; a resend after a lost reply may repeat one (the aggregator dedups).
    assert sorted(set(seqs)) == [0, 1, 2, 3, 4, 5]
    assert seqs == sorted(seqs)
    assert publisher.dropped == 0
    client.close()


def test_clock_conversion_maps_redis_instants_to_this_hosts_monotonic_clock(redis_server) -> None:
    client = redis_server.client()
    offset_ms = wire.measure_clock_offset_ms(client)
    now_us = wire.redis_time_us(client)
    start_ns = wire.local_monotonic_ns_of(now_us + 2_000_000, offset_ms)
    ahead_s = (start_ns - time.monotonic_ns()) / 1e9
    # Never later than 2 s ahead (plus the offset's error); a loaded machine may pause between the two
    # clock reads, which only shortens it. A unit or sign mistake would be off by far more.
    assert 1.5 < ahead_s < 2.05
    client.close()


def test_collector_recreates_a_stream_that_vanished_with_a_redis_restart(redis_server) -> None:
    client = redis_server.client()
    keys = wire.RunKeys("r1")
    collector = StreamCollector(client, keys)
    collector.ensure_group()
    add_entries(client, keys, [make_record("w0", 0)])
    assert [r.seq for r in collector.collect(block_ms=100).records] == [0]
    client.flushall()  # what a restart without persistence leaves
    assert collector.collect(block_ms=50).records == [] and collector.streams_lost == 1
    add_entries(client, keys, [make_record("w0", 1)])
    assert [r.seq for r in collector.collect(block_ms=100).records] == [1]
    client.close()
