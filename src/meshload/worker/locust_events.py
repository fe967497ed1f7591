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

#: Set (True) on the Locust `Environment` that meshload's Locust engine runs: the users' requests are
#: the engine's to record, so the plugin, if the locustfile imports it, stands aside.
ENGINE_MARK = "meshload_engine"
#: A greenlet whose requests are closed-loop (no open-loop wait time): planned instant = send.
CLOSED_LOOP: list[int] = [0, 0]
#: Error kinds of a request that was never written to a connection (not counted as sent).
_NOT_SENT_KINDS = frozenset({"connect_refused", "connect_timeout", "connect_error", "tls_error"})
# Most specific first: (kind, exception types, class names of requests', urllib3's and
# geventhttpclient's exceptions, which need not be imported to be recognised).
_KIND_RULES: tuple[tuple[str, tuple[type[BaseException], ...], frozenset[str]], ...] = (
    ("connect_timeout", (), frozenset({"ConnectTimeout", "ConnectTimeoutError"})),
    ("connect_refused", (ConnectionRefusedError,), frozenset()),
    ("tls_error", (ssl.SSLError, ssl.CertificateError), frozenset({"SSLError"})),
    ("timeout", (TimeoutError,), frozenset({"ReadTimeout", "ReadTimeoutError", "Timeout"})),
    (
        "reset",
        (ConnectionResetError, BrokenPipeError, ConnectionAbortedError),
        frozenset({"RemoteDisconnected", "HTTPConnectionClosed", "ProtocolError", "ChunkedEncodingError"}),
    ),
    (
        "malformed",
        (http.client.HTTPException,),
        frozenset({"HTTPParseError", "BadStatusLine", "LineTooLong", "InvalidChunkLength"}),
    ),
    ("connect_error", (OSError,), frozenset({"NewConnectionError", "NameResolutionError"})),
)


def error_kind(exception: BaseException | None) -> str:
    """The `ERROR_KINDS` kind of a request that failed without a response ("other" if unknown).

    Client libraries wrap the socket error (requests' ConnectionError holds urllib3's MaxRetryError,
    whose `reason` holds the NewConnectionError caused by ConnectionRefusedError), so the whole chain
    is looked at and the most specific kind found in it wins."""
    chain: list[BaseException] = []
    pending = [exception] if exception is not None else []
    while pending:
        current = pending.pop()
        if any(current is seen for seen in chain):
            continue
        chain.append(current)
        pending.extend(arg for arg in current.args if isinstance(arg, BaseException))
        for linked in (current.__cause__, current.__context__, getattr(current, "reason", None)):
            if isinstance(linked, BaseException):
                pending.append(linked)
    for kind, types, kind_names in _KIND_RULES:
        for current in chain:
            # Exact class names: urllib3's NewConnectionError subclasses ConnectTimeoutError, for one.
            if (types and isinstance(current, types)) or type(current).__name__ in kind_names:
                return kind
    return "other"


def start_first_task(greenlet: Any, sent_ns: int) -> list[int]:
    """The task of a greenlet's first request. An open-loop user's first task (Locust ran it without a
    wait) takes the next planned instant if that is due by the request's send; if it is not, the task
    ran ahead of the schedule and is measured from its send, taking nothing from the schedule.
    Anything else is closed loop."""
    args = getattr(greenlet, "args", None)  # Locust's user greenlets are spawned with (user,)
    pacer = pacer_of(args[0]) if args else None
    planned_ns = pacer.claim_due_ns(sent_ns) if pacer is not None else None
    if planned_ns is not None:
        return start_task(greenlet, planned_ns)
    if pacer is not None and pacer.active:
        task = start_task(greenlet, sent_ns)
        task[1] = 0  # ahead of the schedule: no lag, its requests measured from their send
        return task
    # A raw greenlet (not a user's) takes no attributes: closed loop, decided again next time.
    with contextlib.suppress(AttributeError):
        setattr(greenlet, TASK_ATTRIBUTE, CLOSED_LOOP)
    return CLOSED_LOOP


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
