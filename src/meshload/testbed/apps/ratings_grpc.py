"""ratings over gRPC (`ratings.v1.Ratings`, see `protos/ratings.proto`): one replica of three.

The replica serves the gRPC service (with server reflection) on its gRPC port, and its health and the
testbed's admin routes over HTTP on its application port, like every other service. It counts the
calls it receives per method, so the testbed can show how a mesh spread them over the replicas.
`failing` answers every call with UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
from grpc_reflection.v1alpha import reflection

from ..httpserver import Request, Response
from ..ratings_proto import RATINGS_SERVICE, ratings_protocol
from .base import JSON, ServiceApp

METHODS = ("GetRatings", "StreamRatings")
MAX_STREAM_MESSAGES = 10_000
DEFAULT_RATINGS = {"Reviewer1": 5, "Reviewer2": 4}  # what GET /ratings/<id> answers

_HEALTHY = Response(200, b'{"status":"Ratings is healthy"}', JSON)
_NOT_FOUND = Response(404, b'{"error":"Not found"}', JSON)


class RatingsGrpcApp(ServiceApp):
    """The replica's state: its name, its mode and its call counts (served over the admin routes)."""

    service = "ratings-grpc"

    def __init__(self, version: str, replica: str, fault_scale: float = 1.0) -> None:
        super().__init__(version, {}, fault_scale)
        self.replica = replica
        self.calls = dict.fromkeys(METHODS, 0)

    @property
    def instance_name(self) -> str:
        return self.replica

    def route(self, request: Request) -> Response:
        return _HEALTHY if request.path == "/health" else _NOT_FOUND

    def info(self) -> dict:
        return {**super().info(), "replica": self.replica, "calls": dict(self.calls)}


def _servicer(app: RatingsGrpcApp) -> Any:
    messages, services = ratings_protocol()
    generated: Any = services.RatingsServicer  # made from the .proto at run time

    class RatingsServicer(generated):
        async def GetRatings(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
            app.calls["GetRatings"] += 1
            if app.mode == "failing":
                await context.abort(grpc.StatusCode.UNAVAILABLE, "Service unavailable")
            return messages.GetRatingsResponse(id=request.product_id, ratings=DEFAULT_RATINGS, replica=app.replica)

        async def StreamRatings(self, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            app.calls["StreamRatings"] += 1
            if app.mode == "failing":
                await context.abort(grpc.StatusCode.UNAVAILABLE, "Service unavailable")
            count = request.messages or len(DEFAULT_RATINGS)
            if not 0 < count <= MAX_STREAM_MESSAGES:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, f"messages must be between 0 and {MAX_STREAM_MESSAGES}"
                )
            reviewers = list(DEFAULT_RATINGS.items())
            for index in range(count):
                reviewer, stars = reviewers[index % len(reviewers)]
                yield messages.ReviewerRating(reviewer=reviewer, stars=stars, replica=app.replica)

    return RatingsServicer()


async def start_grpc_server(app: RatingsGrpcApp, port: int) -> grpc.aio.Server:
    """The replica's gRPC server on 127.0.0.1:`port`, started, with reflection."""
    _, services = ratings_protocol()
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    services.add_RatingsServicer_to_server(_servicer(app), server)
    reflection.enable_server_reflection((RATINGS_SERVICE, reflection.SERVICE_NAME), server)
    try:
        bound = server.add_insecure_port(f"127.0.0.1:{port}")
    except RuntimeError as exc:  # grpcio's way of saying the bind failed
        raise OSError(f"cannot listen on 127.0.0.1:{port}: {exc}") from exc
    if bound != port:
        raise OSError(f"cannot listen on 127.0.0.1:{port}")
    await server.start()
    return server


async def stop_grpc_server(server: grpc.aio.Server, grace_s: float = 1.0) -> None:
    await asyncio.shield(server.stop(grace_s))
