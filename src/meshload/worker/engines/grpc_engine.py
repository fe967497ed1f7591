"""The gRPC engine: `grpc://` and `grpcs://` targets, unary and server-streaming calls on grpcio's
asyncio API, open loop or closed loop (`grpc_runner`), over N channels per worker."""

from __future__ import annotations

import asyncio
import dataclasses

from ...scenarios.schedule import WorkerShare
from .asyncio_engine import AsyncioEngine
from .base import EngineJob, EngineOutcome
from .grpc_reflection import with_reflected_descriptors
from .grpc_runner import GrpcClosedLoopRunner, GrpcOpenLoopRunner


class GrpcEngine(AsyncioEngine):
    """gRPC on asyncio (uvloop where installed)."""

    async def run_async(self, job: EngineJob, stop: asyncio.Event | None = None) -> EngineOutcome:
        plan = job.share.plan
        if not plan.grpc.descriptor_set:  # the coordinator usually did this already
            plan = with_reflected_descriptors(plan)
            job = dataclasses.replace(job, share=WorkerShare(plan, job.share.index, job.share.count))
        runner_class = GrpcOpenLoopRunner if job.share.is_open_loop else GrpcClosedLoopRunner
        return await runner_class(job, stop).run()
