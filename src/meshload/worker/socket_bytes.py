"""The bytes an engine's connections receive, counted by its fold process instead of on its loop.

On the loop an HTTP/1.1 connection counts nothing per read: the kernel does (`tcpi_bytes_received`).
Collecting those counts at an interval cut took one system call per connection, the last piece of
a cut left on the loop at high rates. With a fold process, the loop only notes which sockets opened
(their inode) and the final count of those it closes (`SocketEvents`), and sends them at each cut;
the fold process reads the count of every open one in one `sock_diag` dump and keeps the marks
(`SocketBytes`). The bytes of an interval are those up to the dump, a moment after its cut (bytes
arriving in between count in it rather than the next); none is counted twice or lost, except on a
connection the server resets, as on the loop.
"""

from __future__ import annotations

from .sock_diag import SocketDiag

#: The final count of a socket that was lost before it could be read (the server reset it).
LOST = -1


class SocketEvents:
    """The loop's side: the engine's sockets opened since the last cut, as (inode, address family),
    and those closed, as (inode, bytes received in all, or `LOST`)."""

    __slots__ = ("closed", "opened")

    def __init__(self) -> None:
        self.opened: list[tuple[int, int]] = []
        self.closed: list[tuple[int, int]] = []

    def take(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """The events since the last call, and a fresh start."""
        opened, closed = self.opened, self.closed
        self.opened, self.closed = [], []
        return opened, closed


class SocketBytes:
    """The fold process's side: the bytes received since the last mark of each open socket."""

    def __init__(self) -> None:
        self._diag: SocketDiag | None = None  # opened at the first cut
        self._marks: dict[int, int] = {}  # inode: bytes received up to the last count
        self._families: dict[int, int] = {}  # inode: address family

    def count(self, opened: list[tuple[int, int]], closed: list[tuple[int, int]]) -> int:
        """Bytes received since the last count: by the sockets closed meanwhile up to their close,
        by the open ones up to now."""
        marks = self._marks
        for inode, family in opened:
            marks[inode] = 0
            self._families[inode] = family
        received = 0
        for inode, total in closed:
            mark = marks.pop(inode, None)
            self._families.pop(inode, None)
            if mark is not None and total != LOST:
                # The loop's count at the close is final, even below a dump's: a dump may have read
                # the server's FIN as a byte just before the kernel marked it received, as `ss` can.
                received += total - mark
        if marks:
            if self._diag is None:
                self._diag = SocketDiag()
            for inode, total in self._diag.bytes_received(marks, set(self._families.values())).items():
                received += total - marks[inode]
                marks[inode] = total
        return received

    def close(self) -> None:
        if self._diag is not None:
            self._diag.close()
