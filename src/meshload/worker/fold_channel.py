"""An engine's end of its fold process (`worker.fold_process`): started with the run, on the loop.

The frames go out on the child's stdin through the loop's pipe transport (a write that the pipe
cannot take at once is buffered by the transport, never waited for); the replies come back on its
stdout, one complete record per cut, in the order of the cuts. The child is kept off the cores this
process is pinned to, when there are others. If it fails or vanishes, `on_failure` hears of it with
the reason and every awaited record raises it: the run fails, nothing is reported as measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import subprocess
import sys
from collections import deque
from collections.abc import Callable
from typing import cast

import numpy as np

from ..errors import RunError
from . import fold_frames as frames
from .cores import keep_off_our_cores

#: The pipe's capacity asked for (Linux's default is 64 KiB; a fold frame is up to 128 KiB).
PIPE_SIZE = 1 << 20
#: Frames the child has not read yet beyond this many bytes: it has fallen behind for good.
MAX_BACKLOG_BYTES = 256 << 20
#: How long the child gets to leave once its stdin is closed.
CLOSE_TIMEOUT_S = 10.0
#: How long a child whose stdout has closed gets to exit before it is reported as gone without a code.
EXIT_WAIT_S = 1.0
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


class FoldChannel:
    """The fold process of one engine run: `await start()`, frames, `await close()`."""

    def __init__(self, *, on_failure: Callable[[BaseException], None]) -> None:
        self._settings = b""  # what the child folds by (`configure`), sent first
        self._on_failure = on_failure
        self._transport: asyncio.SubprocessTransport | None = None
        self._stdin: asyncio.WriteTransport | None = None
        self._replies: deque[tuple[int, asyncio.Future[bytes]]] = deque()
        self._received = bytearray()
        self._exited: asyncio.Future[None] | None = None
        self._closing = False
        self._replies_done = False
        self.failure: BaseException | None = None

    def configure(self, *, status_names: tuple[str, ...], late_threshold_us: int) -> None:
        """How the records name statuses and which sends count as late: the recorder's own settings."""
        self._settings = json.dumps(
            {"status_names": list(status_names), "late_threshold_us": late_threshold_us}
        ).encode()

    async def start(self) -> None:
        if not self._settings:
            raise RuntimeError("configure() the fold channel before starting it")
        loop = asyncio.get_running_loop()
        self._exited = loop.create_future()
        transport, _ = await loop.subprocess_exec(
            lambda: _ChildProtocol(self),
            sys.executable,
            "-m",
            "meshload.worker.fold_main",
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,  # the worker's log
        )
        self._transport = transport
        # uvloop's pipe transports do not derive from asyncio's classes, whose methods they have.
        stdin = cast(asyncio.WriteTransport, transport.get_pipe_transport(0))
        self._stdin = stdin
        _enlarge(stdin)
        keep_off_our_cores(transport.get_pid())
        self._write(frames.INIT, 0, self._settings)

    def send_fold(self, seq: int, columns: np.ndarray) -> None:
        """Responses of interval `seq`: planned, sent, done and statuses, one after the other."""
        self._write(frames.FOLD, seq, columns.data.cast("B"))

    def reply_for(self, seq: int) -> asyncio.Future[bytes]:
        """Interval `seq` is closed: its complete record, encoded (`encode_record`), once its cut has
        been sent and answered. Intervals are closed, sent and answered in order."""
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        if self.failure is not None:
            future.set_exception(self.failure)
            return future
        self._replies.append((seq, future))
        return future

    def send_cut(self, seq: int, cut: bytes) -> None:
        """Interval `seq`'s counters (`fold_frames.encode_cut`), after every response of it."""
        self._write(frames.CUT, seq, cut)

    def send_sockets(self, seq: int, opened: list[tuple[int, int]], closed: list[tuple[int, int]]) -> None:
        """Interval `seq` is cut now: the engine's sockets opened and closed since the last cut, for
        the child to count the interval's bytes received (`socket_bytes`); ahead of its cut's counters."""
        self._write(frames.SOCKETS, seq, frames.encode_sockets(opened, closed))

    async def close(self) -> None:
        """Close the child's stdin and wait for it to leave (killed if it does not in time)."""
        transport = self._transport
        if transport is None or self._closing:
            return
        self._closing = True
        assert self._stdin is not None and self._exited is not None
        self._stdin.close()
        try:
            await asyncio.wait_for(asyncio.shield(self._exited), CLOSE_TIMEOUT_S)
        except TimeoutError:
            transport.kill()
        transport.close()
        self._fail(RunError("the fold process was closed before it answered"))

    def _write(self, kind: bytes, seq: int, payload: bytes | memoryview) -> None:
        stdin = self._stdin
        if stdin is None or self.failure is not None:
            return
        stdin.writelines((frames.header(kind, seq, len(payload)), payload))
        if stdin.get_write_buffer_size() > MAX_BACKLOG_BYTES:
            self._fail(
                RunError(
                    f"the worker's fold process is {MAX_BACKLOG_BYTES >> 20} MiB of responses behind: "
                    "it gets too little CPU; give the worker more cores or a lower rate"
                )
            )

    # -- from the child ----------------------------------------------------------------------------

    def _data_received(self, data: bytes) -> None:
        received = self._received
        received += data
        size = frames.HEADER.size
        while len(received) >= size:
            kind, seq, length = frames.HEADER.unpack_from(received)
            if len(received) < size + length:
                return
            payload = bytes(received[size : size + length])
            del received[: size + length]
            if kind == frames.RECORD and self._replies:
                expected, future = self._replies.popleft()
                if expected != seq:
                    self._fail(RunError(f"the fold process answered interval {seq} where {expected} was due"))
                    return
                if not future.done():
                    future.set_result(payload)  # decoded only where it is read (`ShippedRecord`)
            elif kind == frames.FAILED:
                self._fail(RunError(payload.decode(errors="replace")))
            else:
                self._fail(RunError(f"the fold process sent an unexpected frame {kind!r}"))

    def _exited_now(self) -> None:
        if self._exited is not None and not self._exited.done():
            self._exited.set_result(None)
        if self._replies_done:
            self._ended_early()

    def _replies_ended(self) -> None:
        """The child's stdout is closed: every reply it sent has been read. It failed, unless it
        was told to leave; the reason follows with its exit (or, should it linger, a moment later)."""
        self._replies_done = True
        if self._exited is not None and self._exited.done():
            self._ended_early()
        else:
            asyncio.get_running_loop().call_later(EXIT_WAIT_S, self._ended_early)

    def _ended_early(self) -> None:
        if self._closing or self.failure is not None:
            return
        code = self._transport.get_returncode() if self._transport is not None else None
        ended = "ended" if code is None else f"ended (exit code {code})"
        self._fail(RunError(f"the worker's fold process {ended} during the run"))

    def _fail(self, exc: BaseException) -> None:
        if self.failure is not None:
            return
        self.failure = exc
        while self._replies:
            _, future = self._replies.popleft()
            if not future.done():
                future.set_exception(exc)
        if not self._closing:
            self._on_failure(exc)


class _ChildProtocol(asyncio.SubprocessProtocol):
    def __init__(self, channel: FoldChannel) -> None:
        self.channel = channel

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        if fd == 1 and isinstance(data, bytes):
            self.channel._data_received(data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1:
            self.channel._replies_ended()

    def process_exited(self) -> None:
        self.channel._exited_now()


def _enlarge(stdin: asyncio.WriteTransport) -> None:
    """Ask for a larger pipe (one write then takes a whole fold frame); the default works too."""
    pipe = stdin.get_extra_info("pipe")
    with contextlib.suppress(OSError, AttributeError, ValueError):
        fcntl.fcntl(pipe.fileno(), _F_SETPIPE_SZ, PIPE_SIZE)
