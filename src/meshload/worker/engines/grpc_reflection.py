"""Describing a plan's gRPC methods by asking the servers (server reflection, grpcio-reflection's
client), once, before the run: the descriptors then travel in the plan like compiled proto files.

Every problem is one `PlanError` line naming the target: no connection, no reflection service, the
service unknown to the server, a request message that does not fit the method.
"""

from __future__ import annotations

from typing import Any

import grpc

from ...errors import PlanError
from ...scenarios.grpc_calls import GrpcTargetProblem, grpc_calls
from ...scenarios.grpc_target import parse_grpc_url
from ...scenarios.plan import GrpcSchema, Plan
from ...scenarios.protos import encode_descriptor_set
from .grpc_channels import ChannelSetupError, blocking_channel


def with_reflected_descriptors(plan: Plan) -> Plan:
    """`plan` with the descriptors of its gRPC methods, fetched from its targets by server reflection."""
    from google.protobuf import descriptor_pb2

    files: dict[str, Any] = {}  # name -> FileDescriptorProto, dependencies first
    for url in dict.fromkeys(target.url for target in plan.targets):
        target = parse_grpc_url(url)
        try:
            channel = blocking_channel(target, plan)
        except ChannelSetupError as exc:
            raise PlanError(f"{url}: {exc}") from exc
        try:
            grpc.channel_ready_future(channel).result(timeout=plan.connect_timeout_s)
            _add_service_files(channel, target.service, files, url)
        except grpc.FutureTimeoutError:
            raise PlanError(
                f"{url}: cannot connect within {plan.connect_timeout_s:g}s to ask for the method by server "
                "reflection; check the address, or give --proto FILE"
            ) from None
        finally:
            channel.close()
    file_set = descriptor_pb2.FileDescriptorSet(file=list(files.values()))
    described = plan.model_copy(
        update={"grpc": GrpcSchema(descriptor_set=encode_descriptor_set(file_set.SerializeToString()))}
    )
    try:
        grpc_calls(described)
    except GrpcTargetProblem as exc:
        raise PlanError(f"{plan.targets[exc.index].url}: {exc}") from exc
    return described


def _add_service_files(channel: grpc.Channel, service: str, files: dict[str, Any], url: str) -> None:
    """The file that defines `service`, and everything it imports, into `files` (imports first)."""
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    database = ProtoReflectionDescriptorDatabase(channel)
    try:
        root = database.FindFileContainingSymbol(service)
    except grpc.RpcError as exc:
        code = exc.code() if isinstance(exc, grpc.Call) else None
        raise PlanError(
            f"{url}: server reflection failed ({getattr(code, 'name', 'error')}: "
            f"{exc.details() if isinstance(exc, grpc.Call) else exc}); "
            "the server may not offer reflection: give --proto FILE"
        ) from exc
    except KeyError:
        offered = ", ".join(sorted(database.get_services())) or "none"
        raise PlanError(f"{url}: the server does not offer {service!r}; it offers: {offered}") from None

    def add(file: Any) -> None:
        if file.name in files:
            return
        for dependency in file.dependency:
            add(database.FindFileByName(dependency))
        files[file.name] = file

    add(root)
