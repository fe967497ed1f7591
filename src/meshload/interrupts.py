"""SIGINT and SIGTERM during a run or a study: stop the load, keep what was measured, exit 130/143.

`catching()` (around a command) turns both signals into `Interrupted`, a `KeyboardInterrupt` that
knows its signal, so every `finally` and `ExitStack` on the way out cleans up as for Ctrl-C. Inside
`deferred()` (the coordinator's measuring loop, the writing of the reports) a signal is only noted:
the loop sees `pending()`, stops the workers, collects what they measured and writes it marked
interrupted. A second signal while one is pending raises at once, so a user can still force a stop.
"""

from __future__ import annotations

import functools
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import ParamSpec, TypeVar

_P = ParamSpec("_P")
_R = TypeVar("_R")

__all__ = ["Interrupted", "catching", "deferred", "pending", "signal_name", "stopping_in_order", "take"]

#: The signals a run and a study stop on (Ctrl-C, and `kill`/a container runtime's stop).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived; `exit_code` is the shell's 128 + signal number (130, 143)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal_name(signum))
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def name(self) -> str:
        return signal_name(self.signum)


class _State:
    installed = False
    deferring = 0  # nesting depth of `deferred()`
    signum: int | None = None  # the first stop signal received while deferring
    taken = False  # a loop took it and is stopping the run: a further signal raises at once


_state = _State()


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    if _state.deferring and _state.signum is None:
        _state.signum = signum  # the loop that deferred it stops the run in order
        return
    raise Interrupted(signum)


@contextmanager
def catching() -> Iterator[None]:
    """SIGINT and SIGTERM raise `Interrupted` (or are deferred, see `deferred`) while inside."""
    if threading.current_thread() is not threading.main_thread() or _state.installed:
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    for signum in STOP_SIGNALS:
        signal.signal(signum, _on_signal)
    _state.installed, _state.signum, _state.taken = True, None, False
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _state.installed, _state.signum, _state.taken = False, None, False


@contextmanager
def deferred() -> Iterator[None]:
    """While inside, a first stop signal is only noted (`pending()`); leaving the outermost one with a
    signal nobody `take()`-ed raises `Interrupted`."""
    _state.deferring += 1
    try:
        yield
    finally:
        _state.deferring -= 1
    if not _state.deferring and _state.signum is not None and not _state.taken:
        signum, _state.signum = _state.signum, None
        raise Interrupted(signum)


def pending() -> int | None:
    """The stop signal noted inside `deferred()` and not yet taken (None when `catching` is not active)."""
    return None if _state.taken else _state.signum


def take() -> int | None:
    """The pending stop signal, now handled by the caller: it is not raised on leaving `deferred()`."""
    signum = pending()
    if signum is not None:
        _state.taken = True
    return signum


def stopping_in_order(command: Callable[_P, _R]) -> Callable[_P, _R]:
    """`command` run inside `catching()` (its signature kept, for the CLI library to read)."""

    @functools.wraps(command)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with catching():
            return command(*args, **kwargs)

    return wrapper
