# The compiled module's Python interface (hot_path.pyx), for type checkers.
from typing import Any

import numpy as np

def monotonic_ns() -> int: ...
def timerfd_create() -> int: ...
def timerfd_arm(fd: int, due_ns: int) -> None: ...

class RecorderCore:
    buffers: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    count: int
    capacity: int
    sent: int
    def record_response(self, planned_ns: int, sent_ns: int, done_ns: int, status: int) -> None: ...
    def _full(self) -> None: ...

class ClosedLoopControl:
    payload: bytes | None
    end_ns: int
    def __init__(self, payload: bytes | None, end_ns: int) -> None: ...

class OpenLoopControl:
    next_due_ns: int
    accepting_sends: bool
    def __init__(self, next_due_ns: int) -> None: ...

class PoolCore:
    idle: list[Any]
    pending: Any

class ConnectionCore:
    planned_ns: int
    sent_ns: int
    busy: bool
    retired: bool
    _parser: Any
    _write: Any
    runner: Any
    _recorder: RecorderCore
    _heads: Any
    closed_loop: ClosedLoopControl | None
    open_loop: OpenLoopControl | None
    pool: PoolCore | None
    def send(self, payload: bytes, planned_ns: int, sent_ns: int) -> None: ...
    def closed_loop_message_complete(self) -> None: ...
    def open_loop_message_complete(self) -> None: ...

class OpenLoopDispatcher:
    dispatched: int
    def __init__(
        self, runner: Any, sequence: list[tuple[int, bytes]], pools: list[Any], recorder: RecorderCore
    ) -> None: ...
    def dispatch(self, planned_ns: int) -> None: ...
