"""Synthetic studies with a known truth, to measure how well the study's intervals cover it.

The latencies look like the local testbed's at 25-200 rps: a floor of about 1 ms, a lognormal body
(p50 2.5 ms) and a heavier tail (3% of requests wait an extra exponential 3 ms, so p99 is 6-8 ms).
The machine drifts the way the default study and an A/A study showed it does (README, issue 14):

- between blocks, a shift shared by every cell of the block (sd `block_shift_sd_ms`: the cell-to-cell
  spread of p50 was 600 µs at 50 rps and 150 µs at 200 rps) and a relative drift that moves the tail
  more than the body (`block_scale_sd`);
- between the cells of one block, a smaller shift of each cell on its own (`cell_shift_sd_ms`), which
  pairing does not cancel: with 8 blocks the paired Δp50 interval was ±0.29 ms at 50 rps, ±0.18 ms at
  200 rps, so the per-cell shift is about 0.2 ms beside the sampling noise of a few hundred requests.
  `cell_shift_df` makes it Student-t (occasional stalls) instead of normal.

A function's effect is added to every request of its cells, so the true change of every percentile is
exactly the effect. Proxy CPU per 1,000 rps and the error rate drift the same way (block plus cell).
`simulate_studies` gives many studies as arrays (fast, for calibration); `synthetic_cells` gives one
study as the `CellSummary` list a real study produces, with real HDR histograms.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .cell_summary import COMPARED_PERCENTILES, CellSummary
from .hierarchical import percentile_rank
from .histogram import LatencyHistogram

#: No latency goes below this, however far a block drifts down (it only touches the lowest values).
LATENCY_FLOOR_MS = 0.05


@dataclass(frozen=True)
class SyntheticStudyModel:
    """How one load level of a synthetic study behaves (defaults: the testbed at 50 rps, 5 s cells)."""

    requests_per_cell: int = 250
    floor_ms: float = 1.0
    body_median_ms: float = 1.5  # above the floor: p50 of a cell is about 2.5 ms
    body_sigma: float = 0.35
    tail_probability: float = 0.03
    tail_mean_ms: float = 3.0
    block_shift_sd_ms: float = 0.6
    block_scale_sd: float = 0.05
    cell_shift_sd_ms: float = 0.2
    cell_shift_df: float | None = None  # None: normal; else Student t with this many degrees of freedom
    cpu_mcores_per_krps: float = 800.0
    cpu_block_sd: float = 60.0
    cpu_cell_sd: float = 30.0
    error_probability: float = 0.005
    error_block_sd: float = 0.5  # of the log-odds
    memory_mb: float = 30.0
    memory_cell_sd: float = 0.5


#: The drift measured on this machine (README, issue 14), and a harder case with stalls.
MODEL_PROFILES: dict[str, SyntheticStudyModel] = {
    "50rps": SyntheticStudyModel(),
    "200rps": SyntheticStudyModel(requests_per_cell=1000, block_shift_sd_ms=0.15, cell_shift_sd_ms=0.15),
    "3000req": SyntheticStudyModel(requests_per_cell=3000, block_shift_sd_ms=0.3, cell_shift_sd_ms=0.1),
    "stalls": SyntheticStudyModel(cell_shift_sd_ms=0.15, cell_shift_df=3.0),
}


@dataclass(frozen=True)
class SimulatedStudies:
    """Many simulated studies of one comparison: arm 0 the baseline, arm 1 the function."""

    latencies_ms: np.ndarray  # (studies, blocks, 2, requests), each cell sorted
    cpu_mcores_per_krps: np.ndarray  # (studies, blocks, 2)
    error_rate_pct: np.ndarray  # (studies, blocks, 2)

    def percentile_ms(self, percentile: float) -> np.ndarray:
        """Each cell's percentile as HdrHistogram ranks it, shape (studies, blocks, 2)."""
        rank = percentile_rank(percentile, self.latencies_ms.shape[-1])
        return self.latencies_ms[..., rank - 1]


def _cell_shifts(model: SyntheticStudyModel, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if model.cell_shift_df is None:
        return rng.normal(0.0, model.cell_shift_sd_ms, shape)
    df = model.cell_shift_df
    # Scaled to the same standard deviation as the normal case (t has variance df / (df - 2)).
    return rng.standard_t(df, shape) * model.cell_shift_sd_ms * np.sqrt((df - 2.0) / df)


def _latencies_ms(
    model: SyntheticStudyModel, shape: tuple[int, ...], effect_ms: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Latencies of cells of shape (studies, blocks, arms): per-block drift shared by the arms,
    per-cell shift, the arm's effect (`effect_ms` broadcast over the arms axis); sorted per cell."""
    studies, blocks, arms = shape
    n = model.requests_per_cell
    body = model.floor_ms + rng.lognormal(np.log(model.body_median_ms), model.body_sigma, (*shape, n))
    tail = rng.random((*shape, n)) < model.tail_probability
    body[tail] += rng.exponential(model.tail_mean_ms, int(tail.sum()))
    scale = np.exp(rng.normal(0.0, model.block_scale_sd, (studies, blocks, 1, 1)))
    block_shift = rng.normal(0.0, model.block_shift_sd_ms, (studies, blocks, 1, 1))
    cell_shift = _cell_shifts(model, (*shape, 1), rng)
    latencies = body * scale + block_shift + cell_shift + effect_ms.reshape(1, 1, arms, 1)
    np.maximum(latencies, LATENCY_FLOOR_MS, out=latencies)
    latencies.sort(axis=-1)
    return latencies


def _cpu(
    model: SyntheticStudyModel, shape: tuple[int, ...], effect: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    block = rng.normal(0.0, model.cpu_block_sd, (*shape[:2], 1))
    cell = rng.normal(0.0, model.cpu_cell_sd, shape)
    return model.cpu_mcores_per_krps + block + cell + effect.reshape(1, 1, -1)


def _error_rate_pct(
    model: SyntheticStudyModel, shape: tuple[int, ...], effect_pct: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    log_odds = np.log(model.error_probability / (1.0 - model.error_probability))
    block = rng.normal(0.0, model.error_block_sd, (*shape[:2], 1))
    probability = 1.0 / (1.0 + np.exp(-(log_odds + block))) + effect_pct.reshape(1, 1, -1) / 100.0
    probability = np.broadcast_to(np.clip(probability, 0.0, 1.0), shape)
    return 100.0 * rng.binomial(model.requests_per_cell, probability) / model.requests_per_cell


def simulate_studies(
    model: SyntheticStudyModel,
    *,
    studies: int,
    blocks: int,
    rng: np.random.Generator,
    effect_ms: float = 0.0,
    effect_cpu: float = 0.0,
    effect_error_pct: float = 0.0,
) -> SimulatedStudies:
    """`studies` independent studies of `blocks` blocks each, baseline against a function whose
    effect on every request is `effect_ms` (and on CPU per 1,000 rps, and on the error rate)."""
    shape = (studies, blocks, 2)
    return SimulatedStudies(
        latencies_ms=_latencies_ms(model, shape, np.array([0.0, effect_ms]), rng),
        cpu_mcores_per_krps=_cpu(model, shape, np.array([0.0, effect_cpu]), rng),
        error_rate_pct=_error_rate_pct(model, shape, np.array([0.0, effect_error_pct]), rng),
    )


def synthetic_cells(
    effects_ms: Mapping[str, float],
    *,
    blocks: int,
    models: Mapping[float, SyntheticStudyModel],
    seed: int = 0,
    invalid: Sequence[tuple[str, float, int]] = (),
) -> list[CellSummary]:
    """One synthetic study as a real one records it: for each repetition and load level (a block),
    every function once in a shuffled order, each cell with an HDR histogram of its latencies and the
    compared metrics. `effects_ms` maps each function to its effect on every request; its CPU effect
    is the same number in mcores per 1,000 rps x 100. Cells named in `invalid` as (function, rate,
    repetition) are marked invalid."""
    rng = np.random.default_rng(seed)
    functions = list(effects_ms)
    effects = np.array([effects_ms[f] for f in functions])
    cells: list[CellSummary] = []
    for repetition in range(1, blocks + 1):
        for rate, model in sorted(models.items()):
            shape = (1, 1, len(functions))
            latencies = _latencies_ms(model, shape, effects, rng)[0, 0]
            cpu = _cpu(model, shape, effects * 100.0, rng)[0, 0]
            errors = _error_rate_pct(model, shape, np.zeros(len(functions)), rng)[0, 0]
            memory = model.memory_mb + rng.normal(0.0, model.memory_cell_sd, len(functions))
            order = list(range(len(functions)))
            random.Random(f"{seed}/{repetition}/{rate}").shuffle(order)
            for index in order:
                histogram = LatencyHistogram()
                histogram.record_batch(np.round(latencies[index] * 1000.0).astype(np.int64))
                percentiles = histogram.values_at_percentiles([p for _, p in COMPARED_PERCENTILES])
                function = functions[index]
                cells.append(
                    CellSummary(
                        function=function,
                        rate=rate,
                        repetition=repetition,
                        order=len(cells),
                        run_id=f"synthetic-{seed}-{len(cells)}",
                        metrics={
                            **{key: percentiles[p] / 1000.0 for key, p in COMPARED_PERCENTILES},
                            "error_rate_pct": float(errors[index]),
                            "proxy_cpu_mcores_per_krps": float(cpu[index]),
                            "proxy_mem_mb": float(memory[index]),
                        },
                        actual_rps=rate,
                        completed=model.requests_per_cell,
                        valid=(function, rate, repetition) not in set(invalid),
                        histogram=histogram.encode(),
                    )
                )
    return cells
