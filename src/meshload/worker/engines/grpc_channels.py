"""gRPC channels as the engine (and the reflection client) open them: plaintext or TLS, one HTTP/2
connection each.

Each channel keeps its own subchannel pool (`grpc.use_local_subchannel_pool`): gRPC otherwise shares
one connection between channels with the same target and arguments, and "N channels" would be one
connection. Retries are off, so every call the engine counts is one call on the wire.

TLS verification follows the HTTP engine's options: the system's CAs plus the plan's `tls_ca_pem`,
or, with `tls_verify` off, exactly the certificate the server presents (fetched once before the run;
grpcio has no switch to skip verification, so the certificate is trusted for its own names).
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

import grpc

from ...scenarios.grpc_target import GrpcTarget
from ...scenarios.plan import Plan

ChannelOptions = list[tuple[str, Any]]

#: Options of every channel the engine opens.
BASE_OPTIONS: ChannelOptions = [
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.enable_retries", 0),
    ("grpc.max_receive_message_length", -1),
]


class ChannelSetupError(OSError):
    """The server's certificate could not be fetched (with verification off): refused, reset, not TLS."""


def channel_security(
    target: GrpcTarget, plan: Plan, *, fetch_timeout_s: float | None = None
) -> tuple[grpc.ChannelCredentials | None, ChannelOptions]:
    """The credentials (None: plaintext) and extra channel options for `target`."""
    if not target.tls:
        return None, []
    if plan.tls_verify:
        roots = _system_and_plan_roots(plan.tls_ca_pem)
        return grpc.ssl_channel_credentials(root_certificates=roots), []
    pem, name = presented_certificate(target, timeout_s=fetch_timeout_s or plan.connect_timeout_s)
    options: ChannelOptions = [("grpc.ssl_target_name_override", name)] if name else []
    return grpc.ssl_channel_credentials(root_certificates=pem.encode("ascii")), options


def aio_channel(target: GrpcTarget, credentials: grpc.ChannelCredentials | None, options: ChannelOptions) -> Any:
    """A new `grpc.aio` channel (one connection) to `target`; it connects when first asked to."""
    all_options = [*BASE_OPTIONS, *options]
    if credentials is None:
        return grpc.aio.insecure_channel(target.address, options=all_options)
    return grpc.aio.secure_channel(target.address, credentials, options=all_options)


def blocking_channel(target: GrpcTarget, plan: Plan) -> grpc.Channel:
    """A synchronous channel to `target` (for server reflection before a run)."""
    credentials, options = channel_security(target, plan)
    all_options = [*BASE_OPTIONS, *options]
    if credentials is None:
        return grpc.insecure_channel(target.address, options=all_options)
    return grpc.secure_channel(target.address, credentials, options=all_options)


def presented_certificate(target: GrpcTarget, *, timeout_s: float) -> tuple[str, str]:
    """The PEM of the certificate `target` presents, and a name it is valid for (for the name check)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    try:
        with (
            socket.create_connection((target.host, target.port), timeout=timeout_s) as sock,
            context.wrap_socket(sock, server_hostname=target.host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as exc:
        raise ChannelSetupError(f"cannot fetch the certificate of {target.address}: {exc}") from exc
    if der is None:
        raise ChannelSetupError(f"{target.address} presented no certificate")
    return ssl.DER_cert_to_PEM_cert(der), _certificate_name(der, target.host)


def _certificate_name(der: bytes, host: str) -> str:
    """A DNS name or IP address the certificate is valid for, preferring `host` itself."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    certificate = x509.load_der_x509_certificate(der)
    names: list[str] = []
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names += san.get_values_for_type(x509.DNSName)
        names += [str(address) for address in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        pass
    names += [str(attr.value) for attr in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if host in names:
        return host
    return next((name for name in names if "*" not in name), "")


def _system_and_plan_roots(ca_pem: str) -> bytes | None:
    """gRPC takes one PEM bundle: the system's CAs (None when no extra CA) plus the plan's."""
    if not ca_pem:
        return None  # gRPC's own default roots
    paths = ssl.get_default_verify_paths()
    system = ""
    for path in (paths.cafile, paths.openssl_cafile):
        if path:
            try:
                with open(path, encoding="utf-8", errors="replace") as bundle:
                    system = bundle.read()
                break
            except OSError:
                continue
    return (system + "\n" + ca_pem).encode("utf-8")
