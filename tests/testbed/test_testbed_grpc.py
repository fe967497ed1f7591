"""gRPC ratings on the testbed: three grpcio replicas behind the mesh, balanced per connection
(grpc-l4) or per request (grpc-l7), counted per replica on the server side; grpcio's own client."""

from __future__ import annotations

import grpc
import pytest
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from meshload.testbed import TestbedFailure
from meshload.testbed.ratings_proto import RATINGS_SERVICE, ratings_protocol
from meshload.testbed.topology import GRPC_SERVICE, SIDECAR, Ports, instances_of

from .conftest import where

CALLS = 150  # per case: enough for shares in percent, a fraction of a second through two proxies
REPLICAS = [instance.name for instance in instances_of(GRPC_SERVICE)]


def _channel(address: str) -> grpc.Channel:
    # Each channel its own subchannel pool, so its own HTTP/2 connection: channels to one target in
    # one process otherwise share a connection.
    return grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])


def _unary_calls(address: str, channels: int, calls: int) -> list[str]:
    """`calls` GetRatings spread over `channels` connections in turn; the replica of each answer."""
    messages, services = ratings_protocol()
    opened = [_channel(address) for _ in range(channels)]
    try:
        stubs = [services.RatingsStub(channel) for channel in opened]
        request = messages.GetRatingsRequest(product_id=0)
        answers = [stubs[n % channels].GetRatings(request, timeout=5) for n in range(calls)]
    finally:
        for channel in opened:
            channel.close()
    assert all(dict(answer.ratings) == {"Reviewer1": 5, "Reviewer2": 4} for answer in answers)
    return [answer.replica for answer in answers]


def _served(testbed, calls: int, channels: int) -> dict[str, float]:
    """Each replica's share of `calls`, from the replicas' own counts, checked against what the
    client saw."""
    before = testbed.grpc_calls()
    replicas = _unary_calls(testbed.grpc_address, channels, calls)
    after = testbed.grpc_calls()
    served = {name: after[name]["GetRatings"] - before[name]["GetRatings"] for name in REPLICAS}
    assert served == {name: replicas.count(name) for name in REPLICAS}  # server counts = client view
    assert sum(served.values()) == calls
    return {name: count / calls for name, count in served.items()}


@pytest.mark.parametrize("topology", where("grpc-l4"), indirect=True, scope="module")
def test_l4_pins_a_connection_to_a_replica_and_l7_spreads_requests(testbed, topology):
    testbed.apply("grpc-l4")
    one_connection = _served(testbed, CALLS, channels=1)
    assert max(one_connection.values()) >= 0.95, one_connection  # (nearly) every call on one replica
    three_connections = _served(testbed, CALLS, channels=3)
    assert all(share > 0.2 for share in three_connections.values()), three_connections  # connections spread

    testbed.apply("grpc-l7")
    spread = _served(testbed, CALLS, channels=1)
    assert all(abs(share - 1 / 3) <= 0.05 for share in spread.values()), spread  # within a few percent
    print(f"\n{topology}: grpc-l4 one connection {one_connection}, three {three_connections}; grpc-l7 {spread}")


@pytest.mark.parametrize("topology", [SIDECAR], indirect=True, scope="module")
def test_streaming_reflection_counts_and_failures(testbed, topology):
    testbed.apply("grpc-l7", {"lb": "least-request"})
    messages, services = ratings_protocol()
    with _channel(testbed.grpc_address) as channel:
        stub = services.RatingsStub(channel)
        streamed = list(stub.StreamRatings(messages.StreamRatingsRequest(product_id=0, messages=7), timeout=5))
        assert [(m.reviewer, m.stars) for m in streamed[:3]] == [("Reviewer1", 5), ("Reviewer2", 4), ("Reviewer1", 5)]
        assert len(streamed) == 7 and len({m.replica for m in streamed}) == 1
        assert len(list(stub.StreamRatings(messages.StreamRatingsRequest(product_id=0), timeout=5))) == 2
        with pytest.raises(grpc.RpcError) as refused:
            list(stub.StreamRatings(messages.StreamRatingsRequest(messages=20_000), timeout=5))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        # server reflection through the mesh: what a client needs without the .proto file
        database = ProtoReflectionDescriptorDatabase(channel)
        assert RATINGS_SERVICE in database.get_services()
        service = database.FindFileContainingSymbol(RATINGS_SERVICE).service[0]
        assert [(m.name, m.server_streaming) for m in service.method] == [
            ("GetRatings", False),
            ("StreamRatings", True),
        ]

        try:
            testbed.set_app_mode(GRPC_SERVICE, "failing")
            with pytest.raises(grpc.RpcError) as failed:
                stub.GetRatings(messages.GetRatingsRequest(product_id=0), timeout=5)
            assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
        finally:
            testbed.set_app_mode(GRPC_SERVICE, "normal")

    status = testbed.status()["grpc"]
    assert status["address"] == testbed.grpc_address and status["service"] == RATINGS_SERVICE
    assert status["calls"] == testbed.grpc_calls()
    assert sum(calls["StreamRatings"] for calls in status["calls"].values()) >= 3
    assert status["proto"].endswith("ratings.proto")


@pytest.mark.parametrize("topology", where("mtls"), indirect=True, scope="module")
def test_mtls_and_none_carry_grpc_too(testbed, topology):
    messages, services = ratings_protocol()
    testbed.apply("mtls")
    with _channel(testbed.grpc_address) as channel:  # the client speaks plaintext to the gateway
        assert services.RatingsStub(channel).GetRatings(messages.GetRatingsRequest(), timeout=5).replica in REPLICAS
    inbound = Ports.from_json(testbed.folder.load()["ports"]).instances[REPLICAS[0]].inbound
    with _channel(f"127.0.0.1:{inbound}") as channel, pytest.raises(grpc.RpcError):
        services.RatingsStub(channel).GetRatings(messages.GetRatingsRequest(), timeout=2)  # a sidecar wants TLS

    testbed.apply("none")  # no proxies: the address is the first replica itself
    try:
        with _channel(testbed.grpc_address) as channel:
            stub = services.RatingsStub(channel)
            assert {stub.GetRatings(messages.GetRatingsRequest(), timeout=5).replica for _ in range(6)} == {REPLICAS[0]}
    finally:
        testbed.apply("sidecar")
    with pytest.raises(TestbedFailure, match=r"grpc-l4 parameter lb='fastest': choose one of round-robin, "):
        testbed.apply("grpc-l4", {"lb": "fastest"})
