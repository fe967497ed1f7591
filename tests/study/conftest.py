"""Study test helpers: run results built from real HDR histograms filled with sampled latencies."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tests.support.study_runs import study_run

from meshload.results.run_result import RunResult

MakeRun = Callable[..., RunResult]


@pytest.fixture
def make_run() -> MakeRun:
    """A factory of RunResults (`tests.support.study_runs.study_run`)."""
    return study_run
