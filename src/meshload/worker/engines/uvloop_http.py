"""The uvloop HTTP/1.1 engine: `http://` and `https://` targets, open loop (planned instants,
`http1_open_loop`) or closed loop (N clients, `http1_closed_loop`), over keep-alive connections
parsed by httptools (`http_connection`)."""

from __future__ import annotations

import asyncio

from .asyncio_engine import AsyncioEngine
from .base import EngineJob, EngineOutcome
from .http1_closed_loop import ClosedLoopRunner
from .http1_open_loop import OpenLoopRunner
from .parse_errors import parse_errors_counted_not_logged


class UvloopHttpEngine(AsyncioEngine):
    """HTTP/1.1 on asyncio (uvloop for the figures the project quotes; any asyncio loop works)."""

    async def run_async(self, job: EngineJob, stop: asyncio.Event | None = None) -> EngineOutcome:
        runner_class = OpenLoopRunner if job.share.is_open_loop else ClosedLoopRunner
        runner = runner_class(job, stop)
        with parse_errors_counted_not_logged(runner.loop):
            return await runner.run()
