"""The bytes TCP sockets have received, read for many sockets at once through netlink's `sock_diag`.

One dump (`SOCK_DIAG_BY_FAMILY` with `INET_DIAG_INFO`, the interface `ss -ti` uses) returns every
TCP socket of the network namespace with its `struct tcp_info`, so another process can read the
counts of an engine's connections without a system call per connection on the engine's loop: the
fold process does it at each interval cut (`worker.fold_process`). Sockets are known by their inode
(`os.fstat(fd).st_ino`), which the dump reports while a descriptor is open on the socket (a closed
one reports 0). Only the few fields needed are decoded, with `struct`: this runs in the fold process,
whose start-up is kept light (a netlink library's import alone would take longer than all of it).
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import struct
from collections.abc import Collection

_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 0x1
_NLM_F_DUMP = 0x300
_NLMSG_ERROR = 2
_NLMSG_DONE = 3
_INET_DIAG_INFO = 2

_NLMSG_HEADER = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
# inet_diag_req_v2: family, protocol, extensions, pad, states; then inet_diag_sockid (48 bytes, zero).
_REQUEST = struct.Struct("=BBBxI48x")
_ATTRIBUTE = struct.Struct("=HH")  # length, type
_U32 = struct.Struct("=I")
_U64 = struct.Struct("=Q")
#: In inet_diag_msg (72 bytes, attributes after it): the state's and the inode's offsets.
_MSG_LENGTH = 72
_MSG_STATE_OFFSET = 1
_MSG_INODE_OFFSET = 68
#: In struct tcp_info: `tcpi_bytes_received` (Linux 4.1+).
_TCPI_BYTES_RECEIVED_OFFSET = 128
#: The states an engine's open connection can be in with bytes received: ESTABLISHED, and CLOSE_WAIT
#: once the server's FIN has arrived (which the kernel counts as one byte: taken off).
_ESTABLISHED = 1
_CLOSE_WAIT = 8
_STATES = (1 << _ESTABLISHED) | (1 << _CLOSE_WAIT)
_RECEIVE_BUFFER = 1 << 18


class SocketDiag:
    """A netlink socket for `sock_diag` dumps; `close()` it (or use it as a context manager)."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_SOCK_DIAG)
        self._sequence = 0
        self._buffer = bytearray(_RECEIVE_BUFFER)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> SocketDiag:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def bytes_received(self, inodes: Collection[int], families: Collection[int]) -> dict[int, int]:
        """Bytes received so far by each open TCP socket of `inodes` (of address `families`) that is
        connected; the server's FIN is not counted. Sockets not found are left out."""
        found: dict[int, int] = {}
        for family in families:
            self._dump(family, inodes, found)
        return found

    def _dump(self, family: int, inodes: Collection[int], found: dict[int, int]) -> None:
        self._sequence += 1
        request = _REQUEST.pack(family, socket.IPPROTO_TCP, 1 << (_INET_DIAG_INFO - 1), _STATES)
        header = _NLMSG_HEADER.pack(
            _NLMSG_HEADER.size + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST | _NLM_F_DUMP, self._sequence, 0
        )
        self._sock.send(header + request)
        buffer = self._buffer
        view = memoryview(buffer)
        while True:
            size = self._sock.recv_into(view)
            offset = 0
            while offset + _NLMSG_HEADER.size <= size:
                length, kind, _, sequence, _ = _NLMSG_HEADER.unpack_from(buffer, offset)
                if length < _NLMSG_HEADER.size:
                    raise OSError(f"sock_diag: a netlink message of {length} bytes")
                if sequence == self._sequence:
                    if kind == _NLMSG_DONE:
                        return
                    if kind == _NLMSG_ERROR:
                        (error,) = struct.unpack_from("=i", buffer, offset + _NLMSG_HEADER.size)
                        raise OSError(-error, f"sock_diag: {os.strerror(-error)}")
                    if kind == _SOCK_DIAG_BY_FAMILY:
                        _read_socket(buffer, offset + _NLMSG_HEADER.size, offset + length, inodes, found)
                offset += (length + 3) & ~3


def _read_socket(buffer: bytearray, start: int, end: int, inodes: Collection[int], found: dict[int, int]) -> None:
    (inode,) = _U32.unpack_from(buffer, start + _MSG_INODE_OFFSET)
    if inode not in inodes:
        return
    position = start + _MSG_LENGTH
    while position + _ATTRIBUTE.size <= end:
        length, kind = _ATTRIBUTE.unpack_from(buffer, position)
        if length < _ATTRIBUTE.size:
            return
        value = position + _ATTRIBUTE.size
        if kind == _INET_DIAG_INFO and length - _ATTRIBUTE.size >= _TCPI_BYTES_RECEIVED_OFFSET + _U64.size:
            (received,) = _U64.unpack_from(buffer, value + _TCPI_BYTES_RECEIVED_OFFSET)
            if buffer[start + _MSG_STATE_OFFSET] == _CLOSE_WAIT:
                received -= 1
            found[inode] = received
            return
        position += (length + 3) & ~3


def socket_inode(sock: socket.socket) -> int:
    """The inode `SocketDiag` knows `sock` by."""
    return os.fstat(sock.fileno()).st_ino


@functools.cache
def sock_diag_counts_bytes() -> bool:
    """Whether a `sock_diag` dump here reports the bytes a socket received (probed once on a loopback
    pair: a container may refuse netlink, or run a kernel without `tcpi_bytes_received`)."""
    try:
        with contextlib.ExitStack() as stack:
            listener = stack.enter_context(socket.socket())
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            client = stack.enter_context(socket.create_connection(listener.getsockname(), timeout=1))
            server = stack.enter_context(listener.accept()[0])
            server.sendall(b"meshload")
            client.recv(16)
            inode = socket_inode(client)
            diag = stack.enter_context(SocketDiag())
            return diag.bytes_received({inode}, (socket.AF_INET,)) == {inode: len(b"meshload")}
    except OSError:
        return False
