"""Waking at planned instants (kernel timer and polling fallback), and stopping a run early."""

from __future__ import annotations

import asyncio
import time

import pytest
import uvloop

from meshload.scenarios.schedule import split_plan
from meshload.worker.engines import pacing, run_share

from .helpers import closed_plan, open_plan


@pytest.mark.parametrize("kernel_timer", [True, False])
def test_due_timer_never_fires_early_and_follows_re_arming(monkeypatch, kernel_timer) -> None:
    if not kernel_timer:
        monkeypatch.setattr(pacing, "_TIMERFD", None)
    fired: list[tuple[int, int]] = []  # (due, fired at)

    async def main() -> bool:
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        dues = [time.monotonic_ns() + k * 2_000_000 for k in (1, 2, 3, 5, 8)]
        state = {"i": 0}

        def on_due() -> None:
            fired.append((dues[state["i"]], time.monotonic_ns()))
            state["i"] += 1
            if state["i"] == len(dues):
                done.set()
            else:
                timer.arm(dues[state["i"]])

        timer = pacing.DueTimer(loop, on_due)
        timer.arm(time.monotonic_ns() + 10_000_000_000)  # replaced at once by the next arm
        timer.arm(dues[0])
        await asyncio.wait_for(done.wait(), 5)
        precise = timer.precise
        timer.close()
        return precise

    precise = uvloop.run(main())
    assert precise is kernel_timer
    assert len(fired) == 5
    assert all(at >= due for due, at in fired)
    # Each firing follows its own (re-armed) instant, not the 10 s one it replaced. Typical lateness is
    # tens of microseconds; a loaded CI machine can add tens of milliseconds of scheduling delay, so the
    # bound only separates "followed the re-arm" from "waited for something else" (benchmarks measure
    # the lag itself).
    assert max(at - due for due, at in fired) < 1_000_000_000


@pytest.mark.parametrize("loop_model", ["open", "closed"])
def test_a_stop_event_ends_the_run_early_with_a_final_record(http_server, loop_model) -> None:
    server = http_server("ok")
    plan = open_plan(server.url, 500, 30.0) if loop_model == "open" else closed_plan(server.url, 2, 30.0)
    records = []

    async def main():
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.5, stop.set)
        return await run_share(
            split_plan(plan, 1)[0], start_ns=time.monotonic_ns(), sink=records.append, worker_id="w", stop=stop
        )

    began = time.monotonic()
    outcome = uvloop.run(main())
    assert time.monotonic() - began < 5
    assert records and records[-1].final and outcome.records == len(records)
    assert outcome.completed == outcome.sent == server.counters()["requests"] > 50
    assert outcome.errors == {} and outcome.missed == 0
