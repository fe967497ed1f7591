"""Bytes received counted in the fold process: real sockets read through a real `sock_diag` dump, and
runs whose bytes, per interval and in all, match what the server sent, with no count on the loop."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import uvloop
from tests.support.http_servers import CLOSE_RESPONSE, OK_RESPONSE

from meshload.worker.engines.http_connection import HttpConnection
from meshload.worker.fold_channel import FoldChannel
from meshload.worker.offloaded_recorder import FOLD_PROCESS_ENV, OffloadedRecorder
from meshload.worker.sock_diag import SocketDiag, sock_diag_counts_bytes, socket_inode
from meshload.worker.socket_bytes import LOST, SocketBytes, SocketEvents

from .helpers import measure, open_plan

MS = 1_000_000  # ns

pytestmark = pytest.mark.skipif(
    not sock_diag_counts_bytes(), reason="this kernel or container refuses sock_diag: the loop counts the bytes"
)


@pytest.fixture
def pairs() -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    """Three connected loopback pairs (client, server)."""
    opened: list[socket.socket] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        pairs = []
        for _ in range(3):
            client = socket.create_connection(listener.getsockname())
            server, _ = listener.accept()
            opened += [client, server]
            pairs.append((client, server))
        yield pairs
    for sock in opened:
        sock.close()


def _received(client: socket.socket, total: int) -> None:
    """Wait until `client` has `total` bytes in its receive queue (loopback delivers at once, almost)."""
    deadline = time.monotonic() + 5
    while len(client.recv(total + 1, socket.MSG_PEEK)) < total and time.monotonic() < deadline:
        time.sleep(0.001)


def test_a_dump_reads_each_sockets_bytes_without_the_servers_fin(pairs) -> None:
    sizes = (1, 700, 65_000)
    for (client, server), size in zip(pairs, sizes, strict=True):
        server.sendall(b"x" * size)
        _received(client, size)
    inodes = [socket_inode(client) for client, _ in pairs]
    expected = dict(zip(inodes, sizes, strict=True))
    with SocketDiag() as diag:
        assert diag.bytes_received(set(inodes), (socket.AF_INET, socket.AF_INET6)) == expected
        pairs[0][1].close()  # the server's FIN: CLOSE_WAIT, and one more "byte" in the kernel's count
        time.sleep(0.05)
        assert diag.bytes_received({inodes[0]}, (socket.AF_INET,)) == {inodes[0]: 1}
        # Only the sockets asked for, only of the families asked for.
        assert diag.bytes_received({inodes[1]}, (socket.AF_INET,)) == {inodes[1]: 700}
        assert diag.bytes_received(set(inodes), (socket.AF_INET6,)) == {}


def test_socket_bytes_count_each_byte_once_across_cuts_closes_and_resets(pairs) -> None:
    (a, a_server), (b, b_server), (c, _) = pairs
    counter = SocketBytes()
    try:
        inodes = {sock: socket_inode(sock) for sock in (a, b, c)}
        a_server.sendall(b"x" * 100)
        _received(a, 100)
        # Cut 1: a and b opened; a has 100 bytes.
        assert counter.count([(inodes[a], socket.AF_INET), (inodes[b], socket.AF_INET)], []) == 100
        a_server.sendall(b"x" * 50)
        b_server.sendall(b"x" * 30)
        _received(a, 150)
        _received(b, 30)
        # Cut 2: nothing opened or closed; only what arrived since cut 1.
        assert counter.count([], []) == 80
        # a closes with 170 in all (its final count, read by the loop), b is reset (lost), c was
        # never reported open: its close is not counted.
        a_server.sendall(b"x" * 20)
        assert counter.count([], [(inodes[a], 170), (inodes[b], LOST), (inodes[c], 999)]) == 20
        # Nothing left to count, and a second close of a is ignored.
        assert counter.count([], [(inodes[a], 170)]) == 0
        # Opened and closed within one cut: all of it.
        assert counter.count([(inodes[c], socket.AF_INET)], [(inodes[c], 40)]) == 40
    finally:
        counter.close()


@pytest.fixture
def loop_counts(monkeypatch) -> list[int]:
    """The times a connection added its kernel count to the recorder on the loop: those of an open
    connection whose count the fold process is not keeping (it has no inode reported open)."""
    calls: list[int] = []
    collect = HttpConnection.collect_bytes

    def counting(self: HttpConnection, **options: bool) -> None:
        if self._sock is not None and not self._inode:
            calls.append(1)
        collect(self, **options)

    monkeypatch.setattr(HttpConnection, "collect_bytes", counting)
    return calls


@pytest.mark.parametrize("kind", ["ok", "close"])
def test_a_run_with_a_fold_process_counts_every_intervals_bytes_with_none_read_on_the_loop(
    kind, http_server, monkeypatch, loop_counts
) -> None:
    """Keep-alive connections and one connection per request (the server closes each: its FIN is not
    a byte). Bytes at the server = bytes in the records, each interval's its own; the loop counted none."""
    monkeypatch.setenv(FOLD_PROCESS_ENV, "always")
    server = http_server(kind)
    response = OK_RESPONSE if kind == "ok" else CLOSE_RESPONSE
    rate, duration_s = 800, 3.0
    run = measure(open_plan(server.url, rate, duration_s), interval_s=0.5)
    planned = round(rate * duration_s)
    assert run.completed == server.counters()["requests"] == planned and run.errors == {}
    assert run.bytes_received == planned * len(response)
    # Each interval's own: the dump follows its cut by the moment the fold process takes to read the
    # frame (ms on a busy machine), not by the interval its responses wait in the buffer at this rate.
    for record in run.records[:-1]:
        assert record.bytes_received == pytest.approx(record.completed * len(response), rel=0.1)
    assert loop_counts == []
    assert sum(record.fold_cpu_seconds for record in run.records) > 0


def test_a_dump_reads_ipv6_sockets_too() -> None:
    try:
        listener = socket.create_server(("::1", 0), family=socket.AF_INET6)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with listener, socket.create_connection(listener.getsockname()[:2]) as client:
        server, _ = listener.accept()
        with server:
            server.sendall(b"x" * 321)
            _received(client, 321)
            inode = socket_inode(client)
            with SocketDiag() as diag:
                assert diag.bytes_received({inode}, (socket.AF_INET6,)) == {inode: 321}
                assert diag.bytes_received({inode}, (socket.AF_INET,)) == {}


def test_a_cuts_socket_events_go_after_it_in_a_piece_of_their_own_and_before_its_counters() -> None:
    sent: list[tuple[str, int]] = []
    deferred: list[Callable[[], None]] = []

    async def main() -> None:
        channel = FoldChannel(on_failure=_raise)
        recorder = OffloadedRecorder(channel, worker_id="w", capacity=16)
        recorder.socket_events = SocketEvents()
        recorder.defer = deferred.append
        await channel.start()
        for name in ("send_fold", "send_sockets", "send_cut"):
            _watch(channel, name, sent)
        try:
            recorder.socket_events.opened.append((1, socket.AF_INET))
            recorder.detach(offset_s=0.0, duration_s=1.0, start_unix_ms=0)
            assert sent == []  # the cut itself writes nothing
            deferred.pop(0)()  # the process's CPU read (`_read_cpu`): nothing written either
            assert sent == []
            deferred.pop(0)()
            assert sent == [("send_sockets", 0)]
            recorder.record_response(0, 0, MS, 200)
            recorder.detach(offset_s=1.0, duration_s=1.0, start_unix_ms=1_000)
            # The buffer goes now, before the deferred write: the events still precede the counters.
            recorder.fold()
            assert sent[1:] == [("send_fold", 1), ("send_sockets", 1), ("send_cut", 0), ("send_cut", 1)]
            final = recorder.detach(offset_s=2.0, duration_s=1.0, start_unix_ms=2_000, final=True)
            assert sent[5:] == [("send_sockets", 2), ("send_cut", 2)]
            assert (await final.completed()).final
        finally:
            await channel.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


def _watch(channel: FoldChannel, name: str, sent: list[tuple[str, int]]) -> None:
    send = getattr(channel, name)

    def watched(seq: int, *payload: Any) -> None:
        sent.append((name, seq))
        send(seq, *payload)

    setattr(channel, name, watched)


def _raise(exc: BaseException) -> None:
    raise exc
