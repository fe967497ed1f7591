"""Calibration of the study's statistics on simulated studies with a known truth.

    python bench/bench_study_statistics.py            # the full calibration (a few minutes)
    python bench/bench_study_statistics.py --quick    # a smoke run (fewer studies, fewer settings)

Prints four tables, every figure measured here from seeded simulations (`results.synthetic_study`:
lognormal body plus an exponential tail, block drift and per-cell drift as this machine showed):

1. Every interval method (paired t, percentile / BCa / studentised bootstrap over blocks, hierarchical
   bootstrap over blocks and requests) at 3 to 30 blocks: coverage of a zero effect (= 1 - the
   false-positive rate) per metric, and the median half-width.
2. The chosen method (paired t) at effects of 0, 50 µs, 100 µs and 0.5 ms: coverage and the share of
   studies that call the effect significant (power).
3. The half-width stopping rule: coverage and false-positive rate of the interval a budgeted study ends
   with, by the minimum blocks before a stop; beside it, stopping at the first significant look.
4. A/A calibration (`results.aa_calibration`) of many synthetic A/A studies: its false-positive rate and
   sub-study coverage.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

if importlib.util.find_spec("meshload") is None:  # not installed, no PYTHONPATH=src: the checkout's, last
    sys.path.append(str(Path(__file__).resolve().parents[1] / "src"))

from meshload.results.aa_calibration import calibrate_aa
from meshload.results.block_intervals import BLOCK_METHODS
from meshload.results.method_calibration import (
    CALIBRATED_METRICS,
    METHODS,
    Effect,
    measure_coverage,
    measure_sequential_coverage,
)
from meshload.results.sequential import prefix_intervals
from meshload.results.synthetic_study import MODEL_PROFILES, simulate_studies, synthetic_cells

SHORT = {
    "p50_ms": "p50",
    "p90_ms": "p90",
    "p99_ms": "p99",
    "proxy_cpu_mcores_per_krps": "cpu",
    "error_rate_pct": "err",
}


def methods_table(studies: int, hierarchical_studies: int, profiles: list[str], blocks: list[int]) -> None:
    print("\n## 1. Coverage of a zero effect by method (nominal 95%; false-positive rate = 1 - coverage)")
    print(f"{studies} simulated studies per setting ({hierarchical_studies} for the hierarchical bootstrap)\n")
    header = " | ".join(SHORT[m] for m in CALIBRATED_METRICS)
    print(f"| profile | blocks | method | {header} | p50 half-width ms |")
    print("|---|---|---|" + "---|" * len(CALIBRATED_METRICS) + "---|")
    for profile in profiles:
        for count in blocks:
            # The block methods see the same simulated studies; the hierarchical bootstrap (one study
            # at a time, resampling requests) sees fewer.
            figures = measure_coverage(
                MODEL_PROFILES[profile],
                blocks=count,
                effect=Effect(),
                studies=studies,
                methods=tuple(BLOCK_METHODS),
                seed=count,
            ) + measure_coverage(
                MODEL_PROFILES[profile],
                blocks=count,
                effect=Effect(),
                studies=hierarchical_studies,
                methods=("hierarchical",),
                seed=count,
                resamples=1000,
            )
            for method in METHODS:
                found = {f.metric: f for f in figures if f.method == method}
                cells = " | ".join(f"{found[m].coverage:.3f}" if m in found else "–" for m in CALIBRATED_METRICS)
                print(f"| {profile} | {count} | {method} | {cells} | {found['p50_ms'].median_half_width:.3f} |")


def effects_table(studies: int, profiles: list[str], blocks: list[int]) -> None:
    print("\n## 2. Paired t interval with a known effect: coverage / share called significant")
    print(f"{studies} simulated studies per setting; CPU effect +20 mcores per 1,000 rps beside each\n")
    print("| profile | blocks | effect | p50 | p90 | p99 | cpu |")
    print("|---|---|---|---|---|---|---|")
    for profile in profiles:
        for count in blocks:
            for effect_ms in (0.0, 0.05, 0.1, 0.5):
                cpu = 20.0 if effect_ms else 0.0
                figures = measure_coverage(
                    MODEL_PROFILES[profile],
                    blocks=count,
                    effect=Effect(latency_ms=effect_ms, cpu_mcores_per_krps=cpu),
                    studies=studies,
                    metrics=("p50_ms", "p90_ms", "p99_ms", "proxy_cpu_mcores_per_krps"),
                    seed=100 + count + round(effect_ms * 1000),  # independent noise per setting
                )
                cells = " | ".join(f"{f.coverage:.3f} / {f.called:.3f}" for f in figures)
                print(f"| {profile} | {count} | {effect_ms * 1000:g} µs | {cells} |")


def sequential_table(studies: int) -> None:
    print("\n## 3. Half-width stopping rule (zero effect, 50rps profile, at most 40 blocks)")
    print(f"{studies} simulated studies per setting\n")
    print("| targets | min blocks | metric | coverage | false positives | reached | mean blocks |")
    print("|---|---|---|---|---|---|---|")
    for targets in ({"p50_ms": 0.2}, {"p50_ms": 0.12}, {"p50_ms": 0.2, "p99_ms": 1.5}):
        for minimum in (3, 5, 8):
            figures = measure_sequential_coverage(
                MODEL_PROFILES["50rps"],
                targets=targets,
                effect=Effect(),
                studies=studies,
                max_blocks=40,
                min_blocks=minimum,
                seed=minimum,
            )
            written = ",".join(f"{SHORT[k]}={v:g}ms" for k, v in targets.items())
            for f in figures:
                print(
                    f"| {written} | {minimum} | {SHORT[f.metric]} | {f.coverage:.3f} | {f.called:.3f} | "
                    f"{f.reached:.3f} | {f.mean_blocks:.1f} |"
                )
    # For contrast: stop at the first look (from 3 blocks) where the p50 interval excludes 0.
    simulated = simulate_studies(MODEL_PROFILES["50rps"], studies=studies, blocks=40, rng=np.random.default_rng(9))
    p50 = simulated.percentile_ms(50.0)
    excludes = prefix_intervals(p50[..., 1] - p50[..., 0]).excludes_zero()[:, 2:]
    print(
        f"\nStopping at the first significant look instead (3 to 40 blocks): "
        f"{excludes.any(axis=1).mean():.3f} of zero-effect studies called significant."
    )


def aa_table(studies: int) -> None:
    print("\n## 4. A/A calibration of synthetic A/A studies (12 blocks at 50 and 200 rps, sub-studies of 6)")
    levels = {50.0: MODEL_PROFILES["50rps"], 200.0: MODEL_PROFILES["200rps"]}
    false_positives = comparisons = covered = drawn = 0
    for seed in range(studies):
        cells = synthetic_cells({"sidecar": 0.0, "sidecar-again": 0.0}, blocks=12, models=levels, seed=seed)
        result = calibrate_aa(cells, "sidecar", "sidecar-again", seed=seed)
        false_positives += result.false_positives.count
        comparisons += result.false_positives.total
        covered += result.coverage.count
        drawn += result.coverage.total
    print(
        f"\n{studies} A/A studies: {false_positives} of {comparisons} comparisons called significant "
        f"({false_positives / comparisons:.3f}); sub-study coverage {covered / drawn:.3f} ({drawn} intervals)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run: fewer studies and settings")
    parser.add_argument("--studies", type=int, default=3000, help="simulated studies per setting")
    parser.add_argument("--hierarchical-studies", type=int, default=400)
    arguments = parser.parse_args()
    started = time.monotonic()
    if arguments.quick:
        studies, hierarchical, profiles, blocks = 300, 60, ["50rps"], [3, 10]
    else:
        studies, hierarchical = arguments.studies, arguments.hierarchical_studies
        profiles, blocks = ["50rps", "200rps", "stalls"], [3, 5, 10, 30]
    methods_table(studies, hierarchical, profiles, blocks)
    effects_table(studies, profiles, [3, 10, 30] if not arguments.quick else [3])
    sequential_table(studies)
    aa_table(20 if arguments.quick else 200)
    print(f"\n({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
