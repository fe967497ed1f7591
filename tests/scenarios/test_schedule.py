"""The union of N workers' schedules is the process the plan asks for: evenly spaced, Poisson, or
following a ramp; and a closed loop's clients add up to the plan's concurrency."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from meshload.scenarios import ClosedLoop, OpenLoop, Plan, Stage, Target, split_plan

NS_PER_S = 1_000_000_000


def _plan(load: OpenLoop | ClosedLoop, *, duration_s: float, warmup_s: float = 0.0, seed: int = 0) -> Plan:
    return Plan(
        targets=(Target(url="http://127.0.0.1:9/"),), load=load, duration_s=duration_s, warmup_s=warmup_s, seed=seed
    )


def _drain(plan: Plan, workers: int, chunk_s: float = 0.25) -> list[np.ndarray]:
    """Every worker's instants, taken chunk by chunk as an engine does; checks each chunk's window."""
    per_worker = []
    for share in split_plan(plan, workers):
        schedule = share.schedule()
        chunks = []
        previous_s = 0.0
        t_s = chunk_s
        while not schedule.exhausted:
            chunk = schedule.take_until(t_s)
            # Handed out in time order, each instant in [previous t, t): never late, never early.
            assert np.all(np.diff(chunk) >= 0)
            if len(chunk):
                assert chunk[0] >= round(previous_s * NS_PER_S) - 1
                assert chunk[-1] < round(t_s * NS_PER_S) + 1
            chunks.append(chunk)
            previous_s, t_s = t_s, t_s + chunk_s
            assert t_s < plan.total_s + 10 * chunk_s, "the schedule never reported itself exhausted"
        instants = np.concatenate(chunks)
        assert len(schedule.take_until(t_s + 100)) == 0
        per_worker.append(instants)
    return per_worker


@pytest.mark.parametrize(("rate", "workers"), [(300.0, 3), (1000.0, 4), (77.0, 5), (250.0, 1)])
def test_constant_arrivals_interleave_into_one_evenly_spaced_schedule(rate: float, workers: int) -> None:
    plan = _plan(OpenLoop(rate=rate), duration_s=3.0, warmup_s=1.0)
    per_worker = _drain(plan, workers)
    merged = np.sort(np.concatenate(per_worker))
    expected_total = rate * plan.total_s
    assert len(merged) == pytest.approx(expected_total, abs=1)
    assert merged[0] == 0
    assert merged[-1] < plan.total_s * NS_PER_S
    # Exactly evenly spaced: every gap is the period, up to the 1 ns rounding of each instant.
    assert np.all(np.abs(np.diff(merged) - NS_PER_S / rate) <= 1.0)
    for instants in per_worker:
        assert abs(len(instants) - expected_total / workers) <= 1
        # Each worker alone is evenly spaced too, at N periods: no bursts on any one worker.
        assert np.all(np.abs(np.diff(instants) - workers * NS_PER_S / rate) <= 1.0)


def test_poisson_arrivals_merge_into_a_poisson_process() -> None:
    rate, duration_s, workers = 200.0, 100.0, 4
    plan = _plan(OpenLoop(rate=rate, arrival="poisson"), duration_s=duration_s, seed=7)
    per_worker = _drain(plan, workers, chunk_s=1.0)
    merged = np.sort(np.concatenate(per_worker))
    expected_total = rate * duration_s
    assert abs(len(merged) - expected_total) < 5 * np.sqrt(expected_total)

    gaps_s = np.diff(merged) / NS_PER_S
    assert stats.kstest(gaps_s, "expon", args=(0, 1 / rate)).pvalue > 0.001
    # The same test rejects a schedule that is not exponential (the constant one) at this sample size.
    assert stats.kstest(np.full(len(gaps_s), 1 / rate), "expon", args=(0, 1 / rate)).pvalue < 1e-6
    # Each worker alone is Poisson at rate/N.
    for instants in per_worker:
        assert stats.kstest(np.diff(instants) / NS_PER_S, "expon", args=(0, workers / rate)).pvalue > 0.001

    per_second = np.bincount((merged // NS_PER_S).astype(int), minlength=int(duration_s))
    assert per_second.mean() == pytest.approx(rate, rel=0.05)
    # Poisson counts: the variance equals the mean (index of dispersion ≈ 1; its sd here is ≈ 0.14).
    assert 0.6 < per_second.var(ddof=1) / per_second.mean() < 1.5


def test_poisson_schedules_are_reproducible_from_the_seed() -> None:
    load = OpenLoop(rate=500.0, arrival="poisson")
    first = _drain(_plan(load, duration_s=2.0, seed=11), 3)
    again = _drain(_plan(load, duration_s=2.0, seed=11), 3)
    other = _drain(_plan(load, duration_s=2.0, seed=12), 3)
    for mine, same in zip(first, again, strict=True):
        np.testing.assert_array_equal(mine, same)
    assert not any(len(a) == len(b) and np.array_equal(a, b) for a, b in zip(first, other, strict=True))
    # Workers of one run draw independent streams, not copies of one another.
    assert not np.array_equal(first[0][:50], first[1][:50])
    # Chunking does not change the schedule: one big take gives the same instants.
    whole = split_plan(_plan(load, duration_s=2.0, seed=11), 3)[0].schedule().take_until(10.0)
    np.testing.assert_array_equal(whole, first[0])


def _expected_per_second(stages: list[tuple[float, float]], start_rate: float) -> np.ndarray:
    """∫ rate over each whole second of a piecewise-linear ramp, by fine numeric integration."""
    total_s = sum(duration for duration, _ in stages)
    times = np.cumsum([0.0] + [duration for duration, _ in stages])
    rates = [start_rate] + [rate for _, rate in stages]
    fine = np.linspace(0, total_s, int(total_s) * 10_000 + 1)
    rate_at = np.interp(fine, times, rates)
    cumulative = np.concatenate(([0.0], np.cumsum((rate_at[1:] + rate_at[:-1]) / 2 * np.diff(fine))))
    return np.diff(np.interp(np.arange(int(total_s) + 1), fine, cumulative))


STAGES = [(4.0, 400.0), (2.0, 400.0), (4.0, 0.0)]  # ramp 50 -> 400 over 4 s, hold 2 s, ramp down to 0


def test_constant_arrivals_follow_the_stages_second_by_second() -> None:
    load = OpenLoop(rate=50.0, stages=tuple(Stage(duration_s=d, rate=r) for d, r in STAGES))
    plan = _plan(load, duration_s=8.0, warmup_s=2.0)
    merged = np.sort(np.concatenate(_drain(plan, 3, chunk_s=0.1)))
    per_second = np.bincount((merged // NS_PER_S).astype(int), minlength=10)
    expected = _expected_per_second(STAGES, 50.0)
    assert len(per_second) == 10
    assert np.all(np.abs(per_second - expected) <= 1.5)
    assert per_second[:4].tolist() == sorted(per_second[:4].tolist())  # rising
    assert per_second[6:].tolist() == sorted(per_second[6:].tolist(), reverse=True)  # falling


def test_poisson_arrivals_follow_the_stages() -> None:
    load = OpenLoop(rate=50.0, arrival="poisson", stages=tuple(Stage(duration_s=d, rate=r) for d, r in STAGES))
    plan = _plan(load, duration_s=10.0, seed=3)
    merged = np.sort(np.concatenate(_drain(plan, 2, chunk_s=0.1)))
    per_second = np.bincount((merged // NS_PER_S).astype(int), minlength=10)
    expected = _expected_per_second(STAGES, 50.0)
    # Each second's count within 4.5 Poisson standard deviations of the ramp's integral.
    assert np.all(np.abs(per_second - expected) <= 4.5 * np.sqrt(expected) + 1)
    # Time-rescaled to the ramp's cumulative intensity, the arrivals are a unit-rate Poisson process.
    times_s = merged / NS_PER_S
    share = split_plan(plan, 1)[0]
    from meshload.scenarios import RateCurve

    assert isinstance(share.plan.load, OpenLoop)
    curve = RateCurve(share.plan.load, plan.total_s)
    rescaled = np.array([curve.counts_at_time(t) for t in times_s])
    assert stats.kstest(np.diff(rescaled), "expon").pvalue > 0.001


def test_instants_on_a_falling_ramp_are_handed_out_in_their_own_chunk() -> None:
    # Λ(t) is concave on a falling ramp; instants must still come out in the chunk they belong to
    # (the engine would otherwise send them late). `_drain` checks every chunk's window.
    load = OpenLoop(rate=2000.0, stages=(Stage(duration_s=2.0, rate=0.0),))
    plan = _plan(load, duration_s=2.0)
    per_worker = _drain(plan, 2, chunk_s=0.05)
    assert sum(len(instants) for instants in per_worker) == pytest.approx(2000, abs=2)
    # However it is chunked, a worker's schedule is the same instants.
    for share, instants in zip(split_plan(plan, 2), per_worker, strict=True):
        np.testing.assert_array_equal(share.schedule().take_until(plan.total_s), instants)


@pytest.mark.parametrize(("concurrency", "workers"), [(10, 3), (1, 4), (7, 7), (64, 5), (100, 1)])
def test_closed_loop_clients_split_to_the_plan_concurrency(concurrency: int, workers: int) -> None:
    shares = split_plan(_plan(ClosedLoop(concurrency=concurrency), duration_s=1.0), workers)
    clients = [share.concurrency for share in shares]
    assert sum(clients) == concurrency
    assert max(clients) - min(clients) <= 1
    assert not any(share.is_open_loop for share in shares)
    with pytest.raises(ValueError):
        shares[0].schedule()


def test_expected_totals_add_up_to_the_plan() -> None:
    plan = _plan(OpenLoop(rate=123.0), duration_s=4.0, warmup_s=1.0)
    shares = split_plan(plan, 4)
    assert sum(share.schedule().expected_total for share in shares) == pytest.approx(123.0 * 5.0)
    with pytest.raises(ValueError):
        split_plan(plan, 0)
