"""gRPC methods described by protobuf descriptors, and request messages built from JSON against them.

Proto files are compiled once, where the plan is made, by protoc (grpcio-tools) into a
FileDescriptorSet with every import included; the set travels in the plan (`GrpcSchema`), so workers
need neither the files nor a compiler. A set fetched by server reflection has the same form. The
protobuf packages are imported only when a gRPC plan needs them (they are the `grpc` extra).
"""

from __future__ import annotations

import base64
import functools
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: How long protoc may take for one plan's files.
PROTOC_TIMEOUT_S = 60.0
_MISSING_EXTRA = "gRPC targets need meshload's grpc extra: pip install 'meshload[grpc]'"


class ProtoError(ValueError):
    """A proto file, method or request message that cannot be used; the message says what to do."""


@dataclass(frozen=True)
class MethodSchema:
    """One method of a service: its wire path, whether it streams, and its request message type."""

    path: str  # "/package.Service/Method"
    input_type: str  # fully qualified message name
    client_streaming: bool
    server_streaming: bool
    request_class: Any  # the generated message class of `input_type`


def compile_protos(files: Sequence[Path], import_paths: Sequence[Path] = ()) -> bytes:
    """The serialized FileDescriptorSet of `files` and everything they import.

    Each file's own folder is searched after `import_paths`, and so are the well-known types that ship
    with grpcio-tools (google/protobuf/*.proto). A protoc error raises ProtoError with protoc's own
    message, which names the file, line and column."""
    try:
        import grpc_tools
    except ImportError:
        raise ProtoError(_MISSING_EXTRA) from None
    for file in files:
        if not file.is_file():
            raise ProtoError(f"{file}: no such proto file")
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    search = [*import_paths, *dict.fromkeys(file.resolve().parent for file in files), well_known]
    with tempfile.TemporaryDirectory(prefix="meshload-protoc-") as scratch:
        out = Path(scratch) / "set.pb"
        # Another process: protoc prints its errors on the C level's stderr, which we want as text.
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "grpc_tools.protoc",
                *(f"--proto_path={path}" for path in search),
                "--include_imports",
                f"--descriptor_set_out={out}",
                *(str(_relative_to_search(file, search)) for file in files),
            ],
            capture_output=True,
            text=True,
            timeout=PROTOC_TIMEOUT_S,
            check=False,
        )
        if completed.returncode != 0 or not out.exists():
            problem = (completed.stderr or completed.stdout).strip().splitlines()
            raise ProtoError(f"protoc: {problem[0] if problem else f'exit code {completed.returncode}'}")
        return out.read_bytes()


def _relative_to_search(file: Path, search: Sequence[Path]) -> Path:
    """`file` as protoc wants it: relative to the first search folder that holds it."""
    resolved = file.resolve()
    for folder in search:
        try:
            return resolved.relative_to(Path(folder).resolve())
        except ValueError:
            continue
    return resolved


def encode_descriptor_set(data: bytes) -> str:
    """A FileDescriptorSet as the plan carries it (base64 text)."""
    return base64.b64encode(data).decode("ascii")


def method_schema(descriptor_set_b64: str, service: str, method: str) -> MethodSchema:
    """The method `service`/`method` in a plan's descriptor set; ProtoError names what is missing."""
    pool = _pool(descriptor_set_b64)
    from google.protobuf import message_factory

    try:
        service_descriptor = pool.FindServiceByName(service)
    except KeyError:
        known = _service_names(descriptor_set_b64)
        raise ProtoError(
            f"service {service!r} is not described; the services described are: {', '.join(known) or 'none'}"
        ) from None
    method_descriptor = service_descriptor.methods_by_name.get(method)
    if method_descriptor is None:
        names = ", ".join(sorted(service_descriptor.methods_by_name))
        raise ProtoError(f"service {service!r} has no method {method!r}; its methods are: {names}")
    return MethodSchema(
        path=f"/{service}/{method}",
        input_type=method_descriptor.input_type.full_name,
        client_streaming=method_descriptor.client_streaming,
        server_streaming=method_descriptor.server_streaming,
        request_class=message_factory.GetMessageClass(method_descriptor.input_type),
    )


def check_callable(schema: MethodSchema) -> None:
    """Refuse the methods the engine cannot call: those whose client streams."""
    if schema.client_streaming:
        kind = "bidirectional-streaming" if schema.server_streaming else "client-streaming"
        raise ProtoError(f"{schema.path} is {kind}; meshload calls unary and server-streaming methods")


def encode_request(schema: MethodSchema, json_text: str | None) -> bytes:
    """The request message written as JSON (protobuf's JSON mapping), serialized; None is the empty message."""
    from google.protobuf import json_format

    text = json_text if json_text is not None and json_text.strip() else "{}"
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProtoError(
            f"the request message is not JSON ({exc.msg} at column {exc.colno}); write e.g. '{{}}'"
        ) from None
    try:
        message = json_format.Parse(text, schema.request_class())
    except json_format.ParseError as exc:
        first_line = str(exc).splitlines()[0]
        raise ProtoError(f"the request message does not fit {schema.input_type}: {first_line}") from None
    data: bytes = message.SerializeToString()
    return data


@functools.lru_cache(maxsize=8)
def _pool(descriptor_set_b64: str) -> Any:
    """A descriptor pool holding the set's files (cached: plans reuse one set for every target)."""
    try:
        from google.protobuf import descriptor_pb2, descriptor_pool
    except ImportError:
        raise ProtoError(_MISSING_EXTRA) from None
    file_set = descriptor_pb2.FileDescriptorSet.FromString(base64.b64decode(descriptor_set_b64))
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()
    pending = list(file_set.file)
    # protoc and reflection list dependencies first, but do not rely on it: add what can be added.
    while pending:
        ready = [file for file in pending if all(dep in added for dep in file.dependency)]
        if not ready:
            missing = sorted({dep for file in pending for dep in file.dependency if dep not in added})
            raise ProtoError(f"the descriptors lack imported files: {', '.join(missing)}")
        for file in ready:
            pool.Add(file)
            added.add(file.name)
        pending = [file for file in pending if file.name not in added]
    return pool


def _service_names(descriptor_set_b64: str) -> list[str]:
    from google.protobuf import descriptor_pb2

    file_set = descriptor_pb2.FileDescriptorSet.FromString(base64.b64decode(descriptor_set_b64))
    return sorted(
        f"{file.package}.{service.name}" if file.package else service.name
        for file in file_set.file
        for service in file.service
    )
