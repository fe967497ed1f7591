"""The blocking entry of every asyncio engine: a fresh event loop in this thread, uvloop where it is
installed (as uvicorn's `loops/auto.py` picks it), and the thread-safe `StopSignal` handed over to
the loop as an `asyncio.Event`."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, ClassVar, TypeVar

from .base import EngineJob, EngineOutcome, EventLoop, StopSignal

T = TypeVar("T")


class AsyncioEngine:
    """Base of the engines that run on asyncio: a subclass implements `run_async`."""

    event_loop: ClassVar[EventLoop] = "asyncio"

    def run(self, job: EngineJob, stop: StopSignal) -> EngineOutcome:
        async def main() -> EngineOutcome:
            loop = asyncio.get_running_loop()
            stopped = asyncio.Event()
            if stop.requested:
                stopped.set()
            undo = stop.on_request(lambda: loop.call_soon_threadsafe(stopped.set))
            try:
                return await self.run_async(job, stopped)
            finally:
                undo()

        return run_on_new_loop(main())

    async def run_async(self, job: EngineJob, stop: asyncio.Event | None = None) -> EngineOutcome:
        """Run `job` on the running loop; `stop`, once set, ends the run early."""
        raise NotImplementedError


def run_on_new_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` to completion on a new event loop: uvloop when installed, else asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
