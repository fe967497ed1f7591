"""The error kind of a failed connect or TLS handshake (`results.interval.ERROR_KINDS`), for every
engine that opens its own TCP connections."""

from __future__ import annotations

import errno
import ssl


def connect_error_kind(exc: BaseException) -> str:
    """The error kind of a failed connect or TLS handshake."""
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return "tls_error"
    if isinstance(exc, ConnectionRefusedError):
        return "connect_refused"
    if isinstance(exc, TimeoutError):
        return "connect_timeout"
    if isinstance(exc, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return "reset"
    if isinstance(exc, OSError) and exc.errno == errno.ECONNREFUSED:
        return "connect_refused"
    return "connect_error"
