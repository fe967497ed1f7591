"""A plan's gRPC targets as calls ready to make: method, request bytes and metadata, built once.

`grpc_calls` is what the engine sends; plan files and command-line options call it too (through
`check_grpc_plan`), so every problem an engine would meet is reported where the plan is made, naming
the target and the key (`url` for the method, `body` for the message).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .grpc_target import GrpcTarget, parse_grpc_url
from .plan import GrpcSchema, Plan, Target
from .protos import MethodSchema, ProtoError, check_callable, compile_protos, encode_descriptor_set, encode_request

#: gRPC metadata keys: lowercase ASCII letters, digits, and `-_.` (HTTP/2 header names, lowercase).
_METADATA_KEY = re.compile(r"^[0-9a-z_.-]+$")


class GrpcTargetProblem(ValueError):
    """A gRPC target that cannot be called: `index` into the plan's targets, `key` ("url", "body",
    "headers") of the value to fix."""

    def __init__(self, index: int, key: str, message: str) -> None:
        super().__init__(message)
        self.index = index
        self.key = key


@dataclass(frozen=True)
class GrpcCall:
    """One target, ready to call."""

    target: GrpcTarget
    schema: MethodSchema
    request: bytes  # the serialized request message
    metadata: tuple[tuple[str, str], ...]


def grpc_schema(proto_files: Sequence[Path], import_paths: Sequence[Path] = ()) -> GrpcSchema:
    """The plan's `grpc` block: proto files compiled, or (none given) left to server reflection."""
    if not proto_files:
        return GrpcSchema()
    descriptor_set = encode_descriptor_set(compile_protos(proto_files, import_paths))
    return GrpcSchema(proto_files=tuple(str(file) for file in proto_files), descriptor_set=descriptor_set)


def grpc_calls(plan: Plan) -> list[GrpcCall]:
    """Every target of a gRPC plan as a call, in the plan's order (its descriptors must be known)."""
    if not plan.grpc.descriptor_set:
        raise ProtoError("the gRPC methods are not described yet: give proto files, or fetch them by reflection")
    calls = []
    for index, target in enumerate(plan.targets):
        where = parse_grpc_url(target.url)
        try:
            schema = _callable_schema(plan, where)
        except ProtoError as exc:
            raise GrpcTargetProblem(index, "url", str(exc)) from exc
        try:
            request = encode_request(schema, _body(plan, target))
        except ProtoError as exc:
            raise GrpcTargetProblem(index, "body", str(exc)) from exc
        calls.append(GrpcCall(where, schema, request, _metadata(plan, target, index)))
    return calls


def check_grpc_plan(plan: Plan) -> None:
    """Every problem `grpc_calls` would meet, raised now; with reflection still to come, what can be
    checked without the descriptors (bodies are JSON, headers are metadata)."""
    if plan.grpc.descriptor_set:
        grpc_calls(plan)
        return
    for index, target in enumerate(plan.targets):
        body = _body(plan, target)
        if body is not None and body.strip():
            try:
                json.loads(body)
            except json.JSONDecodeError as exc:
                raise GrpcTargetProblem(
                    index, "body", f"the request message is not JSON ({exc.msg} at column {exc.colno})"
                ) from None
        _metadata(plan, target, index)


def _callable_schema(plan: Plan, where: GrpcTarget) -> MethodSchema:
    from .protos import method_schema

    schema = method_schema(plan.grpc.descriptor_set, where.service, where.method)
    check_callable(schema)
    return schema


def _body(plan: Plan, target: Target) -> str | None:
    return target.body if target.body is not None else plan.body


def _metadata(plan: Plan, target: Target, index: int) -> tuple[tuple[str, str], ...]:
    """The plan's and the target's headers as gRPC metadata (keys lowercased, the target's win)."""
    merged: dict[str, str] = {}
    for name, value in {**plan.headers, **target.headers}.items():
        key = name.strip().lower()
        if not _METADATA_KEY.match(key) or key.endswith("-bin"):
            raise GrpcTargetProblem(
                index, "headers", f"{name!r} is not a gRPC metadata key (lowercase letters, digits, - _ .; no -bin)"
            )
        merged[key] = value
    return tuple(merged.items())
