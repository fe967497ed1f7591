"""Waking up at a planned instant with microsecond accuracy on an event loop whose timers tick in ms.

uvloop's timers (and `loop.time()`) have a resolution of one millisecond, so a timer alone would make
sends up to a millisecond late, and polling the clock in a loop burns a core. On Linux a `timerfd`
armed at an absolute CLOCK_MONOTONIC instant (the clock behind `time.monotonic_ns()`) wakes the loop's
own epoll with nanosecond resolution; `DueTimer` wraps one. Elsewhere it falls back to a timer until
`SPIN_WINDOW_NS` before the instant, then one loop pass at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
from collections.abc import Callable
from time import monotonic_ns

#: How long before a due instant the fallback stops trusting loop timers and polls.
SPIN_WINDOW_NS = 1_500_000

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = 0o4000
_TFD_CLOEXEC = 0o2000000
_TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _load_timerfd() -> tuple[Callable[..., int], Callable[..., int]] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        create, settime = libc.timerfd_create, libc.timerfd_settime
    except (OSError, AttributeError):
        return None
    # No argtypes on purpose: converting arguments through `from_param` on every call cost more
    # than the system call itself. Callers pass small ints and a prebuilt pointer object.
    create.restype = ctypes.c_int
    settime.restype = ctypes.c_int
    return create, settime


_TIMERFD = _load_timerfd()


class DueTimer:
    """Calls `callback()` on the loop once `time.monotonic_ns()` has reached the armed instant.

    `arm(due_ns)` replaces any earlier instant (one pending wake-up at a time)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self._loop = loop
        self._callback = callback
        self._fd = -1
        self._fallback: asyncio.Task[None] | None = None
        self._due_ns = 0
        self._armed = False  # a wake-up is pending for `_due_ns`
        self._wake = asyncio.Event()
        if _TIMERFD is not None:
            create, self._settime = _TIMERFD
            fd = create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
            if fd >= 0:
                self._fd = fd
                self._spec = _Itimerspec()
                self._spec_pointer = ctypes.pointer(self._spec)
                loop.add_reader(fd, self._on_readable)
        if self._fd < 0:
            self._fallback = asyncio.ensure_future(self._poll())

    @property
    def precise(self) -> bool:
        """True when a kernel timer (not polling) does the waking."""
        return self._fd >= 0

    def arm(self, due_ns: int) -> None:
        if due_ns == self._due_ns and self._armed:
            return  # already set for that instant
        self._due_ns = due_ns
        self._armed = True
        if self._fd >= 0:
            # An absolute instant in the past fires at once; 0 would disarm, so never pass it.
            seconds, nanoseconds = divmod(max(due_ns, 1), 1_000_000_000)
            value = self._spec.it_value
            value.tv_sec = seconds
            value.tv_nsec = nanoseconds
            self._settime(self._fd, _TFD_TIMER_ABSTIME, self._spec_pointer, None)
        else:
            self._wake.set()

    def close(self) -> None:
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1
        if self._fallback is not None:
            self._fallback.cancel()

    def _on_readable(self) -> None:
        self._armed = False
        self._callback()
        if not self._armed:
            # Re-arming resets the expiry count (and so the readiness); only when nothing was
            # re-armed must the count be read, or epoll would keep reporting the descriptor.
            with contextlib.suppress(BlockingIOError):
                os.read(self._fd, 8)

    async def _poll(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while (remaining_ns := self._due_ns - monotonic_ns()) > 0:
                await pause_before(remaining_ns)
                if self._wake.is_set():
                    break
            else:
                self._armed = False
                self._callback()


async def wait_for_due(due_ns: int) -> None:
    """Return at (or just after) `due_ns` on the monotonic clock; I/O keeps flowing meanwhile."""
    while True:
        remaining_ns = due_ns - monotonic_ns()
        if remaining_ns <= 0:
            return
        await pause_before(remaining_ns)


async def pause_before(remaining_ns: int) -> None:
    """One step of waiting for something `remaining_ns` away: a timer if far, one loop pass if near."""
    if remaining_ns > SPIN_WINDOW_NS:
        await asyncio.sleep((remaining_ns - SPIN_WINDOW_NS) / 1e9)
    else:
        await asyncio.sleep(0)
