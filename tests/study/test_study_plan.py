"""The study plan: file loading with file-and-line errors, interleaved cell order, per-cell run plans."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import pytest

from meshload.coordinator.study_timing import (
    CELL_OVERHEAD_S,
    TESTBED_START_S,
    budget_rounds,
    estimated_duration_s,
    round_estimate_s,
)
from meshload.errors import PlanError
from meshload.results.study_budget import study_targets
from meshload.scenarios.plan import OpenLoop
from meshload.scenarios.study_arms import FunctionSpec
from meshload.scenarios.study_file import load_study_plan
from meshload.scenarios.study_plan import StudyPlan

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


def test_a_cells_load_can_be_a_locustfiles_users(tmp_path: Path) -> None:
    """A study whose scenario has a `locustfile:` (the built-in bookinfo-journey, or a plan file beside
    the study naming its own): each cell runs the users at the cell's rate in tasks per second."""
    (tmp_path / "visit.py").write_text("from locust import HttpUser, task\n")
    (tmp_path / "journey.yaml").write_text("locustfile: visit.py\nurl: /\nload: {rate: 1}\nduration: 10s\n")
    for scenario, file in (("bookinfo-journey", "bookinfo"), ("journey.yaml", "visit.py")):
        study = tmp_path / f"study-{file}.yaml"
        study.write_text(f"scenario: {scenario}\nload_levels: [3, 6]\nduration: 4s\nfunctions: [none, sidecar]\n")
        plan = load_study_plan(study)
        cell = next(cell for cell in plan.cells() if cell.rate == 6.0)
        run_plan = plan.cell_plan(cell, "http://127.0.0.1:18080")
        assert run_plan.locust is not None and run_plan.locust.file == file and run_plan.protocol == "locust"
        assert [target.url for target in run_plan.targets] == ["http://127.0.0.1:18080/"]  # the users' host
        assert isinstance(run_plan.load, OpenLoop) and run_plan.load.rate == 6.0
    # A locustfile the scenario names but that is not there is the scenario's error, with its line.
    (tmp_path / "journey.yaml").write_text("url: /\nlocustfile: gone.py\nload: {rate: 1}\nduration: 10s\n")
    with pytest.raises(PlanError, match=r"journey.yaml:2: .*'gone.py': no such file"):
        load_study_plan(tmp_path / "study-visit.py.yaml")


def test_builtin_studies_load_and_fit_their_budgets() -> None:
    default = load_study_plan("study-default", check_targets=study_targets)
    quick = load_study_plan("study-quick")
    names = [f.name for f in default.functions]
    for required in ("none", "sidecar", "mtls", "retries", "timeout", "circuit-breaker", "rate-limit", "access-log"):
        assert required in names
    assert any(name.startswith("lb-") for name in names)
    limit = next(f for f in default.functions if f.name == "rate-limit")
    assert float(limit.params["limit_rps"]) > 2 * max(default.load_levels)
    # More, shorter blocks: a cell is a few seconds, and the default study adds rounds of blocks
    # for its targets while its budget (under 15 minutes, testbed included) has time for one more.
    assert default.duration_s <= 3 and quick.duration_s <= 3
    assert default.budget_s is not None and default.budget_s < 15 * 60
    assert [t.written for t in study_targets(default.target_halfwidth)] == ["p50=0.05ms", "p99=0.5ms"]
    assert estimated_duration_s(default) <= default.budget_s
    rounds = budget_rounds(default)
    assert rounds >= 6 and rounds * round_estimate_s(default) + TESTBED_START_S == estimated_duration_s(default)
    # The quick study has no budget: its repetitions, well under 3 minutes.
    assert quick.budget_s is None and quick.repetitions >= 3
    assert estimated_duration_s(quick) < 3 * 60
    assert estimated_duration_s(quick) > len(quick.cells()) * (quick.cell_s + CELL_OVERHEAD_S)
    assert len(quick.cells()) < rounds * default.cells_per_round


def test_budget_and_targets_are_checked_where_they_are_written(tmp_path: Path) -> None:
    base = "load_levels: [10]\nduration: 3s\nfunctions: [none, sidecar]\n"
    plan = load_study_plan(
        _write(tmp_path, base + "budget: 10m\ntarget_halfwidth: p50=50us,cpu=20mcores\n"), check_targets=study_targets
    )
    assert plan.budget_s == 600.0 and plan.target_halfwidth == "p50=50us,cpu=20mcores"
    cases = {
        "target_halfwidth: p50=0.05ms\n": (4, ["target_halfwidth", "budget"]),
        "budget: 10m\ntarget_halfwidth: p50=0.05\n": (5, ["target_halfwidth", "needs a unit", "0.05ms"]),
        "budget: 10m\ntarget_halfwidth: p42=1ms\n": (5, ["p42", "not a compared metric"]),
        "budget: soon\n": (4, ["budget", "soon"]),
    }
    for text, (line, words) in cases.items():
        path = _write(tmp_path, base + text)
        with pytest.raises(PlanError) as caught:
            load_study_plan(path, check_targets=study_targets)
        message = str(caught.value)
        assert message.startswith(f"{path}:{line}: ") and "\n" not in message, message
        for word in words:
            assert word in message, message


def test_one_function_can_be_two_arms_and_an_aa_study_compares_them() -> None:
    plan = _plan()
    aa = plan.as_calibration("rate-limit")
    assert aa.calibrate and aa.name == f"{plan.name}-aa"
    assert [(f.name, f.arm_name) for f in aa.functions] == [
        ("rate-limit", "rate-limit-a"),
        ("rate-limit", "rate-limit-b"),
    ]
    assert aa.baselines() == {"rate-limit-a": None, "rate-limit-b": "rate-limit-a"}
    # Same load levels, blocks and cell lengths; each block runs both arms once, shuffled.
    assert (aa.load_levels, aa.repetitions, aa.duration_s) == (plan.load_levels, plan.repetitions, plan.duration_s)
    cells = aa.cells()
    assert len(cells) == 2 * 3 * 3 and len({cell.slug for cell in cells}) == len(cells)
    assert "rate-limit-b-" in cells[0].slug or "rate-limit-a-" in cells[0].slug
    run_plan = aa.cell_plan(cells[0], "http://127.0.0.1:1")
    assert run_plan.labels["function"] == "rate-limit" and run_plan.labels["arm"] == cells[0].function.arm_name
    # A round is one repetition at every load level; `cells` is the rounds in order.
    assert plan.cells(rounds=2) == plan.cells()[: 2 * plan.cells_per_round]
    assert plan.round_cells(4, first_order=7)[0].order == 7 and plan.round_cells(4, first_order=7)[0].repetition == 4
    # An A/A study has exactly two arms, compared with each other, not with a baseline.
    with pytest.raises(ValueError, match="exactly 2 arms"):
        StudyPlan(**{**aa.model_dump(), "functions": [*aa.model_dump()["functions"], {"name": "mtls"}]})
    twice = (FunctionSpec(name="sidecar", arm="left"), FunctionSpec(name="sidecar", arm="left"))
    with pytest.raises(ValueError, match="listed twice"):
        StudyPlan(**{**aa.model_dump(), "functions": twice})


def test_an_aa_study_written_as_a_file(tmp_path: Path) -> None:
    text = (
        "load_levels: [10]\nduration: 3s\ncalibrate: true\nfunctions:\n"
        "  - sidecar\n  - {name: lb-round-robin, arm: round-robin}\n"
    )
    plan = load_study_plan(_write(tmp_path, text))
    assert plan.calibrate and plan.baselines() == {"sidecar": None, "round-robin": "sidecar"}
    with pytest.raises(PlanError) as caught:
        load_study_plan(_write(tmp_path, text.replace("arm: round-robin", "arm: sidecar")))
    assert ":6: " in str(caught.value) and "twice" in str(caught.value)


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
    with pytest.raises(PlanError, match="built-in studies: study-default, study-grpc-balancing, study-quick"):
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
