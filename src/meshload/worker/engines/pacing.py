"""Waking up at a planned instant with microsecond accuracy on an event loop whose timers tick in ms.

uvloop's timers (and `loop.time()`) have a resolution of one millisecond, so a timer alone would make
sends up to a millisecond late, and polling the clock in a loop burns a core. On Linux a `timerfd`
armed at an absolute CLOCK_MONOTONIC instant (the clock behind `time.monotonic_ns()`) wakes the loop's
own epoll with nanosecond resolution; `DueTimer` wraps one. Elsewhere it falls back to a timer until
`SPIN_WINDOW_NS` before the instant, then one loop pass at a time.

An instant closer than `SPIN_NS` is not slept for: the loop keeps polling (one non-blocking pass at a
time, I/O flowing) until it comes. A sleep and its wake-up cost the process 25-35 µs of CPU on the
virtual machines this was measured on (an idle core's wake-up goes through the hypervisor), so a wait
that short costs no more polled than slept through; and at tens of thousands of sends per second,
where the gaps are shorter than a wake-up, sleeping per send is what held one worker near 25,000 per
second. The passes that found nothing to do are counted (`IdleSink.spin_ns`), so that the CPU they
burn is not read as the generator's own load.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from time import monotonic_ns
from typing import Protocol

from ..hot_path import timerfd_arm, timerfd_create

#: How long before a due instant the fallback stops trusting loop timers and polls.
SPIN_WINDOW_NS = 1_500_000
#: Due instants closer than this are polled for instead of slept for (see above).
SPIN_NS = 50_000
#: The most one polling pass counts as idle. An empty pass of uvloop costs about 0.5 µs here; the
#: cheapest pass seen is taken as that cost, and should every pass have handled I/O (none empty),
#: this bound keeps their work from being counted as waiting.
IDLE_PASS_CEILING_NS = 2_000


class IdleSink(Protocol):
    """Where a `DueTimer` adds the time its polling passes spent with nothing to do."""

    spin_ns: int


class DueTimer:
    """Calls `callback()` on the loop once `time.monotonic_ns()` has reached the armed instant.

    `arm(due_ns)` replaces any earlier instant (one pending wake-up at a time)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        callback: Callable[[], None],
        idle_sink: IdleSink | None = None,
    ) -> None:
        self._loop = loop
        self._callback = callback
        self._fd = -1
        self._fallback: asyncio.Task[None] | None = None
        self._due_ns = 0
        self._armed = False  # a wake-up is pending for `_due_ns`
        self._wake = asyncio.Event()
        self._spinning = False  # a polling pass (`_spin`) is scheduled
        self._fd_armed = False  # the timerfd holds an instant
        self._idle_sink = idle_sink
        # The shortest loop pass seen between two polls: what a pass costs when it finds nothing to do.
        self._idle_pass_ns = IDLE_PASS_CEILING_NS
        self._last_pass_ns = 0  # the previous poll of this spin (0: none yet)
        fd = timerfd_create()
        if fd >= 0:
            self._fd = fd
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
        if self._fd < 0:
            self._wake.set()
        elif due_ns - monotonic_ns() <= SPIN_NS:
            if self._fd_armed:
                self._set_fd(0)  # disarm: the poll takes over
            if not self._spinning:
                self._spinning = True
                self._last_pass_ns = 0
                self._loop.call_soon(self._spin)
        else:
            # An absolute instant in the past fires at once; 0 would disarm, so never pass it.
            self._set_fd(max(due_ns, 1))

    def _set_fd(self, due_ns: int) -> None:
        timerfd_arm(self._fd, due_ns)
        self._fd_armed = due_ns != 0

    def _spin(self) -> None:
        """One polling pass: fire if due, else come back after the loop's next (non-blocking) pass."""
        if not self._armed or self._fd_armed:  # disarmed, or re-armed far enough to sleep
            self._spinning = False
            return
        now_ns = monotonic_ns()
        if self._last_pass_ns:
            # A pass that found no I/O costs the least; one that handled responses costs more, and
            # only its idle part counts (as the cheapest pass): the rest was the generator's work.
            pass_ns = now_ns - self._last_pass_ns
            self._idle_pass_ns = min(self._idle_pass_ns, pass_ns)
            if self._idle_sink is not None:
                self._idle_sink.spin_ns += self._idle_pass_ns
        if now_ns >= self._due_ns:
            self._spinning = False
            self._armed = False
            self._callback()
            if self._spinning:  # re-armed for another near instant: the same spin goes on
                self._last_pass_ns = now_ns
        else:
            self._last_pass_ns = now_ns
            self._loop.call_soon(self._spin)

    def close(self) -> None:
        self._armed = False  # a polling pass still scheduled ends itself
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1
        if self._fallback is not None:
            self._fallback.cancel()

    def _on_readable(self) -> None:
        self._fd_armed = False
        self._armed = False
        self._callback()
        if not self._fd_armed:
            # Re-arming resets the expiry count (and so the readiness); only when the descriptor was
            # not re-armed (nothing armed, or a near instant polled for) must the count be read, or
            # epoll would keep reporting it.
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
