"""The HTTP/2 engine: `http://` (h2c, prior knowledge) and `https://` (h2 by ALPN) targets of plans
with `http2`, open loop or closed loop (`h2_runner`), over N multiplexed connections per worker,
each a thin asyncio Protocol that frames HTTP/2 itself, with `hpack` for headers (`h2_connection`)."""

from __future__ import annotations

import asyncio

from .asyncio_engine import AsyncioEngine
from .base import EngineJob, EngineOutcome
from .h2_runner import H2ClosedLoopRunner, H2OpenLoopRunner


class H2Engine(AsyncioEngine):
    """HTTP/2 on asyncio (uvloop where installed)."""

    async def run_async(self, job: EngineJob, stop: asyncio.Event | None = None) -> EngineOutcome:
        runner_class = H2OpenLoopRunner if job.share.is_open_loop else H2ClosedLoopRunner
        return await runner_class(job, stop).run()
