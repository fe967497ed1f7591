"""The open loop takes its planned instants a chunk at a time, half a chunk away from the interval cuts."""

from __future__ import annotations

import numpy as np

from meshload.scenarios import OpenLoop, Plan, Target, split_plan
from meshload.worker.engines.planned_instants import HORIZON_START_S, PLAN_CHUNK_S, take_chunk

NS_PER_S = 1_000_000_000


def test_chunks_end_half_a_chunk_away_from_whole_seconds_and_together_are_the_schedule() -> None:
    plan = Plan(targets=(Target(url="http://127.0.0.1:9/"),), load=OpenLoop(rate=30_000), duration_s=2.0)
    start_ns = 7 * NS_PER_S
    chunks, horizons = [], []
    schedule, horizon_s = split_plan(plan, 1)[0].schedule(), HORIZON_START_S
    while True:
        chunk, horizon_s = take_chunk(schedule, horizon_s, start_ns)
        if not chunk:
            break
        chunks.append(chunk)
        horizons.append(horizon_s)
    # Each chunk ends at its horizon; no horizon falls on a whole second, where the cuts are.
    assert horizons[0] == PLAN_CHUNK_S / 2
    for chunk, horizon in zip(chunks, horizons, strict=True):
        assert chunk[-1] - start_ns < horizon * NS_PER_S
        assert abs(horizon - round(horizon)) >= PLAN_CHUNK_S / 2 - 1e-9
    # Together they are the whole schedule: every instant once, in order, evenly spaced.
    instants = np.array([instant for chunk in chunks for instant in chunk]) - start_ns
    assert len(instants) == 60_000
    assert instants[0] == 0
    assert np.all(np.abs(np.diff(instants) - NS_PER_S / 30_000) <= 1)
