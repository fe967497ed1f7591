"""The study plan: file loading with file-and-line errors, interleaved cell order, per-cell run plans."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import pytest

from meshload.coordinator.study import CELL_OVERHEAD_S, estimated_duration_s
from meshload.errors import PlanError
from meshload.scenarios.plan import OpenLoop
from meshload.scenarios.study_plan import FunctionSpec, StudyPlan, load_study_plan

FUNCTIONS = ("none", "sidecar", "mtls", "retries", "timeout", "rate-limit")


def _plan(**changes: object) -> StudyPlan:
    fields: dict[str, object] = {
        "load_levels": (20.0, 40.0, 80.0),
        "repetitions": 3,
        "duration_s": 5.0,
        "functions": tuple(FunctionSpec(name=name) for name in FUNCTIONS),
        "seed": 4,
    }
    fields.update(changes)
    return StudyPlan(**fields)


def test_cells_are_interleaved_shuffled_per_block_and_reproducible() -> None:
    plan = _plan()
    cells = plan.cells()
    assert len(cells) == len(FUNCTIONS) * 3 * 3
    assert [cell.order for cell in cells] == list(range(len(cells)))
    blocks = [cells[i : i + len(FUNCTIONS)] for i in range(0, len(cells), len(FUNCTIONS))]
    orders = []
    for block_index, block in enumerate(blocks):
        # Each block is one repetition at one load level, with every function exactly once.
        repetition, level = divmod(block_index, 3)
        assert {cell.repetition for cell in block} == {repetition + 1}
        assert {cell.rate for cell in block} == {plan.load_levels[level]}
        assert sorted(cell.function.name for cell in block) == sorted(FUNCTIONS)
        orders.append(tuple(cell.function.name for cell in block))
    assert len(set(orders)) > len(orders) // 2, "the shuffle should differ between blocks"
    # No function runs all its repetitions back to back: between two repetitions of one function at
    # one level, every other function has run.
    positions = [cell.order for cell in cells if cell.function.name == "mtls" and cell.rate == 40.0]
    assert all(later - earlier >= len(FUNCTIONS) for earlier, later in itertools.pairwise(positions))
    # Each function is spread over the whole study, not bunched at one end.
    first_half = Counter(cell.function.name for cell in cells[: len(cells) // 2])
    assert all(count >= 3 for count in first_half.values())
    assert [(c.function.name, c.rate, c.repetition) for c in _plan().cells()] == [
        (c.function.name, c.rate, c.repetition) for c in cells
    ]
    other_seed = [(c.function.name, c.rate) for c in _plan(seed=5).cells()]
    assert other_seed != [(c.function.name, c.rate) for c in cells]
    assert len({cell.slug for cell in cells}) == len(cells)


def test_cell_plan_sends_the_scenario_to_the_ingress_at_the_cells_rate() -> None:
    plan = _plan(
        functions=(
            FunctionSpec(name="none"),
            FunctionSpec(name="sidecar"),
            FunctionSpec(name="rate-limit", params={"limit_rps": "500"}),
        )
    )
    cells = plan.cells()
    limited = next(cell for cell in cells if cell.function.name == "rate-limit" and cell.rate == 80.0)
    run_plan = plan.cell_plan(limited, "http://127.0.0.1:18080")
    assert [target.url for target in run_plan.targets] == ["http://127.0.0.1:18080/productpage"]
    assert isinstance(run_plan.load, OpenLoop)
    assert run_plan.load.rate == 80.0 and run_plan.load.arrival == "poisson"
    assert (run_plan.duration_s, run_plan.warmup_s) == (5.0, 2.0)
    assert run_plan.labels["function"] == "rate-limit"
    assert run_plan.labels["function.limit_rps"] == "500"
    assert run_plan.labels["load_rps"] == "80" and run_plan.labels["repetition"] == str(limited.repetition)
    # Same repetition: same arrival seed for every function (compared on identical schedules).
    same_block = [plan.cell_plan(c, "http://127.0.0.1:1").seed for c in cells if c.repetition == 2]
    assert len(set(same_block)) == 1
    assert plan.cell_plan(cells[0], "http://x:1").seed != same_block[0]


def test_builtin_studies_load_and_fit_their_budgets() -> None:
    default = load_study_plan("study-default")
    quick = load_study_plan("study-quick")
    names = [f.name for f in default.functions]
    for required in ("none", "sidecar", "mtls", "retries", "timeout", "circuit-breaker", "rate-limit", "access-log"):
        assert required in names
    assert any(name.startswith("lb-") for name in names)
    assert len(default.load_levels) == 3 and default.repetitions == 3
    limit = next(f for f in default.functions if f.name == "rate-limit")
    assert float(limit.params["limit_rps"]) > 2 * max(default.load_levels)
    # The estimate printed before a study starts (load + settle + measured per-cell overhead) fits
    # the budgets: 15 minutes for the default study, 3 for --quick.
    assert estimated_duration_s(default) < 15 * 60
    assert estimated_duration_s(quick) < 3 * 60
    assert estimated_duration_s(default) > len(default.cells()) * (default.cell_s + CELL_OVERHEAD_S)
    assert len(quick.cells()) < len(default.cells())


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_file_errors_name_the_file_the_line_and_the_fix(tmp_path: Path) -> None:
    good = (
        "load_levels: [10, 20]\nduration: 3s\nfunctions:\n"
        "  - none\n  - sidecar\n  - {name: mtls, params: {min_tls_version: TLSv1.3}}\n"
    )
    plan = load_study_plan(_write(tmp_path, good))
    assert plan.name == "study" and plan.duration_s == 3.0 and plan.load_levels == (10.0, 20.0)
    assert plan.functions[2].params == {"min_tls_version": "TLSv1.3"}
    assert plan.baselines() == {"none": None, "sidecar": "none", "mtls": "sidecar"}

    cases = {
        # (file text, line, words the message must contain)
        "load_levels: [10]\nduration: 3x\nfunctions: [none]\n": (2, ["duration", "3x"]),
        "load_levels: [10, -5]\nduration: 3s\nfunctions: [none]\n": (1, ["load_levels[1]", "above 0"]),
        "load_levels: [10]\nduration: 3s\nfunctions:\n  - none\n  - mtls\n": (5, ["'sidecar'", "add"]),
        "load_levels: [10]\nduration: 3s\nfunctions:\n  - none\n  - none\n": (5, ["twice"]),
        "load_levels: [10]\nduration: 3s\nrepetitons: 2\nfunctions: [none]\n": (3, ["unknown key", "repetitions"]),
        "load_levels: [10]\nfunctions: [none]\n": (None, ["duration", "required"]),
        "load_levels: [10]\nduration: 3s\nscenario: no-such-scenario\nfunctions: [none]\n": (
            3,
            ["scenario", "no-such-scenario"],
        ),
        "load_levels: [10\nduration: 3s\n": (None, ["YAML"]),
    }
    for text, (line, words) in cases.items():
        path = _write(tmp_path, text)
        with pytest.raises(PlanError) as caught:
            load_study_plan(path)
        message = str(caught.value)
        assert "\n" not in message
        if line is not None:
            assert message.startswith(f"{path}:{line}: "), message
        for word in words:
            assert word in message, message
    with pytest.raises(PlanError, match="built-in studies: study-default, study-quick"):
        load_study_plan("study-nonesuch")
    # A command-line override that is wrong says so instead of pointing into the file.
    with pytest.raises(PlanError, match="command line"):
        load_study_plan(_write(tmp_path, good), {"repetitions": 0})


def test_a_study_takes_its_workers_from_a_kubernetes_fleet_with_k8s_n(tmp_path: Path) -> None:
    base = "load_levels: [10]\nduration: 3s\nfunctions: [none]\n"
    plain = load_study_plan(_write(tmp_path, base))
    assert (plain.workers, plain.kubernetes_workers) == (1, False)
    for written, expected in (("3", (3, False)), ("k8s:4", (4, True)), ("'K8S:2'", (2, True))):
        plan = load_study_plan(_write(tmp_path, f"workers: {written}\n{base}"))
        assert (plan.workers, plan.kubernetes_workers) == expected, written
    for written in ("0", "k8s:0", "'k8s:'", "kube:3", "-1", "two"):
        path = _write(tmp_path, f"{base}workers: {written}\n")
        with pytest.raises(PlanError) as caught:
            load_study_plan(path)
        assert str(caught.value).startswith(f"{path}:4: workers: "), caught.value
        assert "is not a worker count; use N or k8s:N (N: 1 or more)" in str(caught.value)
