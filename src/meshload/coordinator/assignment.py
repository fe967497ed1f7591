"""Handing out a run (not a resumed one): each worker gets its share of the plan (`wire.Assignment`),
checks it, measures its clock offset and answers; once every worker accepted, all get one common start
instant (`wire.Start`). A refusal, or a worker that exited or stayed silent, ends the run here, before
anyone sent anything."""

from __future__ import annotations

import time
from collections.abc import Callable

import redis

from ..errors import RunError
from ..pipeline import wire
from ..scenarios.plan import Plan
from ..scenarios.schedule import split_plan
from .placement import Workers
from .run_keys import signal_stop

#: The common start instant lies this far after the assignments are sent (plus a little per worker),
#: so every worker has its assignment, its clock offset and its connections before it.
START_LEAD_S = 1.0
START_LEAD_PER_WORKER_S = 0.02
#: How long workers have to answer their assignment (they check it and measure their clock offset).
ANSWER_TIMEOUT_S = 15.0
ANSWER_POLL_S = 0.01
# After a first refusal, how long to wait for the other workers' answers so that one line names them all.
REFUSAL_GRACE_S = 3.0


def assign(
    client: redis.Redis,
    keys: wire.RunKeys,
    plan: Plan,
    workers: Workers,
    *,
    run_id: str,
    detached: bool,
    keep_alive: Callable[[], None],
) -> int:
    """Hand every worker its share; once all accepted, the common start instant (Redis server clock,
    Unix microseconds). `detached`: an external Redis, which outlives the coordinator; `keep_alive`
    refreshes the coordinator's own key while the answers are awaited."""
    shares = split_plan(plan, len(workers.ids))
    plan_json = plan.model_dump_json()
    pipe = client.pipeline(transaction=False)
    for worker_id, share in zip(workers.ids, shares, strict=False):
        assignment = wire.Assignment(
            run_id=run_id,
            plan_json=plan_json,
            index=share.index,
            count=share.count,
            detached=detached,
        )
        pipe.rpush(wire.assignment_key(worker_id), wire.encode(assignment))
    pipe.execute()
    _await_answers(client, keys, workers, keep_alive)
    lead_s = START_LEAD_S + START_LEAD_PER_WORKER_S * len(shares)
    redis_now_us = wire.redis_time_us(client)
    start_redis_us = redis_now_us + int(lead_s * 1_000_000)
    start = wire.encode(wire.Start(run_id=run_id, start_redis_us=start_redis_us))
    pipe = client.pipeline(transaction=False)
    for worker_id in workers.ids:
        pipe.rpush(wire.assignment_key(worker_id), start)
    pipe.execute()
    return start_redis_us


def _await_answers(client: redis.Redis, keys: wire.RunKeys, workers: Workers, keep_alive: Callable[[], None]) -> None:
    """Wait until every worker answered its assignment; RunError if one refused or stayed silent."""
    ours = set(workers.ids)
    deadline = time.monotonic() + ANSWER_TIMEOUT_S
    refusal_grace_until: float | None = None
    stop_signalled = False
    while True:
        answers = {
            wire.reply_text(raw_id): wire.decode_answer(raw) for raw_id, raw in client.hgetall(keys.answers).items()
        }
        refused = {w: a.reason for w, a in sorted(answers.items()) if not a.accepted and w in ours}
        silent = [w for w in workers.ids if w not in answers]
        exited = [w for w in silent if workers.exited(w)]
        if not stop_signalled and (refused or exited or (silent and time.monotonic() > deadline)):
            # The workers that accepted drop their share: nothing is sent by anyone.
            signal_stop(client, keys)
            stop_signalled = True
        if refused:
            # The other workers' answers are moments away: wait briefly so that every refusal is
            # named in the one line, not just the first to arrive.
            if refusal_grace_until is None:
                refusal_grace_until = time.monotonic() + REFUSAL_GRACE_S
            if not (silent and not exited and time.monotonic() < refusal_grace_until):
                lines = [f"worker {worker} refused the run: {reason}" for worker, reason in refused.items()]
                raise RunError("; ".join(lines))
        elif exited:
            raise RunError(f"local worker {exited[0]} exited before the run: {workers.last_log_line(exited[0])}")
        if not silent:
            return
        if time.monotonic() > deadline:
            raise RunError(
                f"worker {silent[0]} did not answer its assignment within {ANSWER_TIMEOUT_S:g}s; is it overloaded?"
            )
        keep_alive()
        time.sleep(ANSWER_POLL_S)
