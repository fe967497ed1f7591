"""An event-loop exception handler that keeps the HTTP/1.1 engine's parse errors out of the log.

Plain connections feed the parser straight from the loop (`HttpConnection.data_received` *is* the
parser's `feed_data`), so a malformed response raises inside the loop's read callback: the loop
reports it to its exception handler, then closes the connection, and the error is counted (kind
"malformed") in `Http1Runner.on_lost`. Everything else goes to the handler that was there before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .http_connection import HttpConnection, is_parse_error

ExceptionHandler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]


@contextmanager
def parse_errors_counted_not_logged(loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    """While inside, the loop drops our connections' parse errors (the engine counts them)."""
    previous = loop.get_exception_handler()
    loop.set_exception_handler(_quiet_parse_errors(previous))
    try:
        yield
    finally:
        loop.set_exception_handler(previous)


def _quiet_parse_errors(previous: ExceptionHandler | None) -> ExceptionHandler:
    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        protocol = context.get("protocol")
        if isinstance(protocol, HttpConnection) and is_parse_error(context.get("exception")):
            protocol.collect_bytes(closing=True)  # the descriptor is still open here
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    return handle
