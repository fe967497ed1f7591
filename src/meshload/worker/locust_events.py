"""Locust's `request` events, recorded into a `NamedIntervalRecorder`.

`LocustRequestRecorder.on_request` is a listener for Locust's `request` event (in a Locust process
through the `meshload.locust` plugin, and in a meshload worker that runs locustfile users). It runs
on Locust's hot path, once per request, so it only reads the clock, looks up two things and writes
five integers into the recorder's preallocated arrays.

Times: Locust measures `response_time` (ms, float) with a monotonic clock and fires the event at
once, so the completion is now and the send was `response_time` earlier. The planned instant comes
from the task the calling greenlet runs (`task_pacer`): with an open-loop wait time it is the
instant the task took, shifted by where the request sits in the task; otherwise the request is
closed-loop and its planned instant is its send (corrected = uncorrected, lag 0).

Outcomes: a request with an HTTP status (any, even when Locust failed it) is a response; one without
(status 0, connection failures) is a transport error of the kind its exception says. Locust's own
verdict (the event had an exception) is counted per name as a failure beside that.
"""

from __future__ import annotations

import contextlib
import http.client
import ssl
from time import monotonic_ns
from typing import Any

from gevent import getcurrent

from .named_recorder import NamedIntervalRecorder
from .task_pacer import TASK_ATTRIBUTE, pacer_of, start_task

#: A greenlet whose requests are closed-loop (no open-loop wait time): planned instant = send.
CLOSED_LOOP: list[int] = [0, 0]
#: Error kinds of a request that was never written to a connection (not counted as sent).
_NOT_SENT_KINDS = frozenset({"connect_refused", "connect_timeout", "connect_error", "tls_error"})
# Exceptions of requests, urllib3 and geventhttpclient, by class name (importing them is not needed).
_KINDS_BY_NAME = {
    "ConnectTimeout": "connect_timeout",
    "ConnectTimeoutError": "connect_timeout",
    "NewConnectionError": "connect_error",
    "NameResolutionError": "connect_error",
    "SSLError": "tls_error",
    "ReadTimeout": "timeout",
    "ReadTimeoutError": "timeout",
    "Timeout": "timeout",
    "RemoteDisconnected": "reset",
    "HTTPConnectionClosed": "reset",
    "ProtocolError": "reset",
    "ChunkedEncodingError": "reset",
    "HTTPParseError": "malformed",
    "BadStatusLine": "malformed",
    "LineTooLong": "malformed",
    "InvalidChunkLength": "malformed",
}
# Checked in order: the first class the exception (or one it wraps) is an instance of.
_KINDS_BY_TYPE: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], str], ...] = (
    (ConnectionRefusedError, "connect_refused"),
    ((ssl.SSLError, ssl.CertificateError), "tls_error"),
    (TimeoutError, "timeout"),
    ((ConnectionResetError, BrokenPipeError, ConnectionAbortedError), "reset"),
    (http.client.HTTPException, "malformed"),
)


def error_kind(exception: BaseException | None) -> str:
    """The `ERROR_KINDS` kind of a request that failed without a response ("other" if unknown).

    Client libraries wrap the socket error (requests' ConnectionError holds urllib3's, which holds
    the OSError), so the exception, its causes and its exception arguments are all looked at, the
    innermost known one first."""
    seen: list[BaseException] = []
    pending = [exception] if exception is not None else []
    while pending:
        current = pending.pop()
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        pending.extend(arg for arg in current.args if isinstance(arg, BaseException))
        pending.extend(x for x in (current.__cause__, current.__context__, getattr(current, "reason", None)) if x)
    for current in reversed(seen):
        for cls in type(current).__mro__:
            kind = _KINDS_BY_NAME.get(cls.__name__)
            if kind is not None:
                return kind
        for types, type_kind in _KINDS_BY_TYPE:
            if isinstance(current, types):
                return type_kind
    if any(isinstance(current, OSError) for current in seen):
        return "connect_error"
    return "other"


def start_first_task(greenlet: Any, sent_ns: int) -> list[int]:
    """The task of a greenlet's first request: an open-loop user's first task takes the next planned
    instant (Locust ran it without a wait); anything else is closed-loop."""
    args = getattr(greenlet, "args", None)  # Locust's user greenlets are spawned with (user,)
    pacer = pacer_of(args[0]) if args else None
    if pacer is None or not pacer.active:
        # A raw greenlet (not a user's) takes no attributes: closed loop, decided again next time.
        with contextlib.suppress(AttributeError):
            setattr(greenlet, TASK_ATTRIBUTE, CLOSED_LOOP)
        return CLOSED_LOOP
    return start_task(greenlet, pacer.claim_ns())


class LocustRequestRecorder:
    """`on_request` records one Locust request event (see the module docstring)."""

    def __init__(self, recorder: NamedIntervalRecorder) -> None:
        self.recorder = recorder

    def on_request(
        self,
        name: str,
        response_time: float,
        response: Any = None,
        exception: BaseException | None = None,
        response_length: int | None = 0,
        **_other: Any,
    ) -> None:
        done_ns = monotonic_ns()
        sent_ns = done_ns - int(response_time * 1_000_000)
        current = getcurrent()
        task = getattr(current, TASK_ATTRIBUTE, None)
        if task is None:
            task = start_first_task(current, sent_ns)
        if task is CLOSED_LOOP:
            planned_ns = sent_ns
        else:
            lag_ns = task[1]
            if lag_ns < 0:
                lag_ns = task[1] = max(sent_ns - task[0], 0)
            planned_ns = sent_ns - lag_ns
        recorder = self.recorder
        name_id = recorder.name_id(name)
        status = getattr(response, "status_code", 0) or 0
        if status > 0:
            recorder.record_named_response(name_id, planned_ns, sent_ns, done_ns, status)
            recorder.sent += 1
            recorder.bytes_received += response_length or 0
            if exception is not None:
                recorder.count_failure(name_id)
            return
        kind = error_kind(exception)
        written = kind not in _NOT_SENT_KINDS
        recorder.record_named_error(name_id, kind, planned_ns, sent_ns if written else 0)
        recorder.count_failure(name_id)
        recorder.sent += written
