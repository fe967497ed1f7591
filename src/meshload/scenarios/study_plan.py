"""The plan of a study: which functions, at which load levels, how many times, and in what order.

A study measures what each traffic-control function costs: every function x every load level x N
repetitions, each one run ("cell") with the function alone in force, then each function compared with
its baseline. Its arms are the entries of `functions` (`study_arms`); the file form and its checks are
`study_file`.

Cells run interleaved (`cells()`): for each repetition, for each load level, every function once in
an order shuffled with the plan's seed. A slow drift of a shared machine (another job, thermal
throttling) then spreads over every function instead of landing on whichever ran last. One
repetition at one load level is a *block*; the study compares functions within blocks.

Every entry of `functions` is an *arm* of the study, named by its function unless it says `arm:`;
that is how one function can be listed twice. An A/A study (`calibrate: true`, or `as_calibration`)
has exactly two arms of one configuration, the second compared with the first.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .files import calls_grpc_base, load_plan_file
from .plan import OpenLoop, Plan
from .study_arms import FunctionSpec, functions_problem, usual_baseline

DEFAULT_SCENARIO = "bookinfo-productpage"
TARGETS_NEED_BUDGET = "target_halfwidth needs a time budget to stop within: add budget (e.g. budget: 15m)"
#: Used to check a study's scenario when the plan is loaded, before the target's address is known.
_PLACEHOLDER_BASE_URL = "http://127.0.0.1:9"
_PLACEHOLDER_GRPC_URL = "grpc://127.0.0.1:9"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class StudyCell:
    """One run of the study: a function at a load level, in one repetition."""

    function: FunctionSpec
    rate: float  # requests per second
    repetition: int  # 1-based
    order: int  # 0-based position in the run order

    @property
    def slug(self) -> str:
        """A folder name that sorts in run order: "007-mtls-40rps-r2"."""
        return f"{self.order:03d}-{self.function.arm_name}-{self.rate:g}rps-r{self.repetition}"


class MeshTarget(_Strict):
    """BookInfo on a mesh in a Kubernetes cluster: each cell's function is applied there by the mesh's
    adapter (`meshload.coordinator.mesh`), the load goes to `ingress`."""

    mesh: Literal["istio", "linkerd", "consul"]
    namespace: str = Field("bookinfo", min_length=1)
    ingress: str = Field(min_length=1, pattern=r"^https?://")


class KneeSpec(_Strict):
    """`find_max:` of a study: after the latency cells, each arm's knee (the highest open-loop rate
    meeting `slo` and `errors`) is searched with its function in force (`coordinator.study_knee`)."""

    slo: str = Field(min_length=1)  # "p99<50ms" (`scenarios.slo`)
    errors: str | None = None  # "<0.1%"; None: no failed request allowed
    precision: float = Field(0.05, gt=0, lt=1)  # the bracket's width, as a share of its low end
    step_s: float = Field(5.0, gt=0)  # measured part of each step (the study's warm-up before it)
    start_rps: float | None = Field(None, gt=0)  # the first rate tried; None: the highest load level
    max_rps: float | None = Field(None, gt=0)  # no rate above it is tried; None: no bound
    repeats: int = Field(3, ge=1)  # runs of a rate whose verdict is close to the line


class StudyPlan(_Strict):
    """Everything that defines a study; `cells()` gives its runs in their order."""

    name: str = "study"
    description: str = ""
    target: Literal["testbed"] | MeshTarget = "testbed"
    # A built-in scenario's name or a plan file; its relative URLs are joined to the target's ingress,
    # and its load, duration and warm-up are replaced by the study's.
    scenario: str = DEFAULT_SCENARIO
    arrival: Literal["constant", "poisson"] = "poisson"
    load_levels: tuple[float, ...] = Field(min_length=1, description="requests per second")
    # Blocks per load level; with a budget, the rounds run before the targets may stop the study.
    repetitions: int = Field(3, ge=1)
    duration_s: float = Field(gt=0, description="measured part of each cell")
    warmup_s: float = Field(2.0, ge=0)
    # Seconds to wait after applying a function before the cell starts, so restarts settle.
    settle_s: float = Field(0.5, ge=0)
    workers: int = Field(1, ge=1)
    # `workers: k8s:N`: every cell runs on N workers of a Kubernetes fleet, scaled up for the study.
    kubernetes_workers: bool = False
    seed: int = 0
    functions: tuple[FunctionSpec, ...] = Field(min_length=1)
    # A time budget for the whole study: rounds of blocks are added, after `repetitions`, while an
    # interval is wider than its target (`target_halfwidth`) and the next round still fits.
    budget_s: float | None = Field(None, gt=0)
    # Half-width targets as written ("p50=0.05ms,p99=0.5ms"; read by `results.halfwidth_targets`).
    target_halfwidth: str = ""
    # An A/A study: two arms of one configuration, so every true difference is 0 (see module doc).
    calibrate: bool = False
    # The testbed topologies the study runs every function in (its arms are then "function@topology",
    # see `arms_in_topologies`); empty: the one in force.
    topologies: tuple[str, ...] = ()
    # Each arm's knee, searched after the latency cells (None: not searched).
    find_max: KneeSpec | None = None

    @field_validator("load_levels")
    @classmethod
    def _positive_distinct_levels(cls, levels: tuple[float, ...]) -> tuple[float, ...]:
        if any(level <= 0 for level in levels):
            raise ValueError("every load level must be a rate above 0 requests per second")
        if len(set(levels)) != len(levels):
            raise ValueError("load levels must be distinct")
        return tuple(sorted(levels))

    @model_validator(mode="after")
    def _functions_and_baselines(self) -> StudyPlan:
        problem = functions_problem(self.functions, calibrate=self.calibrate)
        if problem is not None:
            raise ValueError(f"functions[{problem[0]}]: {problem[2]}")
        if self.target_halfwidth and self.budget_s is None:
            raise ValueError(TARGETS_NEED_BUDGET)
        return self

    # -- derived -------------------------------------------------------------------------------

    def baseline_of(self, function: str) -> str | None:
        """The arm an arm is compared with (None for `none`, and for an A/A study's first arm)."""
        if self.calibrate:
            first = self.functions[0].arm_name
            return first if function != first else None
        for spec in self.functions:
            if spec.arm_name == function:
                # The usual baseline is the function's, whatever the arm is called ("none@sidecar": none).
                return spec.baseline if spec.baseline is not None else usual_baseline(spec.name)
        return usual_baseline(function)

    def baselines(self) -> dict[str, str | None]:
        return {function.arm_name: self.baseline_of(function.arm_name) for function in self.functions}

    def cells(self, rounds: int | None = None) -> list[StudyCell]:
        """Every cell in run order: repetition-major, then load level, then functions shuffled, for
        `rounds` repetitions (default: the plan's)."""
        cells: list[StudyCell] = []
        for repetition in range(1, (self.repetitions if rounds is None else rounds) + 1):
            cells.extend(self.round_cells(repetition, first_order=len(cells)))
        return cells

    def round_cells(self, repetition: int, *, first_order: int) -> list[StudyCell]:
        """One round: repetition `repetition` at every load level, a block per level.

        The shuffle of each (repetition, level) block has its own seeded generator, so the order is
        the same every time the plan is run, and different from block to block.
        """
        cells: list[StudyCell] = []
        for level_index, rate in enumerate(self.load_levels):
            functions = list(self.functions)
            random.Random(f"{self.seed}/{repetition}/{level_index}").shuffle(functions)
            for function in functions:
                cells.append(StudyCell(function, rate, repetition, first_order + len(cells)))
        return cells

    @property
    def cells_per_round(self) -> int:
        return len(self.functions) * len(self.load_levels)

    def as_calibration(self, function: str = "sidecar") -> StudyPlan:
        """This study's A/A calibration: the same load levels, cells, blocks and budget, with
        `function` (its parameters from this plan when it lists it) as both arms."""
        spec = next((f for f in self.functions if f.name == function), FunctionSpec(name=function))
        arms = [{"name": function, "params": spec.params, "arm": f"{function}-{side}"} for side in ("a", "b")]
        return StudyPlan.model_validate(
            {
                **self.model_dump(),
                "name": f"{self.name}-aa",
                "description": f"A/A calibration of {self.name}: {function} against itself",
                "functions": arms,
                "calibrate": True,
            }
        )

    @property
    def cell_s(self) -> float:
        """How long each cell sends load: warm-up plus measured part."""
        return self.warmup_s + self.duration_s

    def cell_plan(self, cell: StudyCell, base_url: str) -> Plan:
        """The run plan of one cell: the scenario sent to `base_url` (the target's ingress) at the
        cell's rate, for the study's warm-up and duration."""
        overrides: dict[str | tuple[str, ...], object] = {
            "base_url": base_url,
            **({"max_connections": cell.function.connections} if cell.function.connections else {}),
            "name": f"{self.name}/{cell.slug}",
            "load": {"rate": cell.rate, "arrival": self.arrival},
            "duration": self.duration_s,
            "warmup": self.warmup_s,
            # The same arrivals for every function of one repetition (common random numbers: the
            # functions are compared on identical schedules), new ones for each repetition.
            "seed": self.seed * 1000 + cell.repetition,
        }
        plan = load_plan_file(self.scenario, overrides, overrides_origin="the study plan")
        labels = {
            **plan.labels,
            "study": self.name,
            "function": cell.function.name,
            **({"arm": cell.function.arm_name} if cell.function.arm is not None else {}),
            **({"topology": cell.function.topology} if cell.function.topology else {}),
            **({"connections": str(cell.function.connections)} if cell.function.connections else {}),
            **{f"function.{key}": value for key, value in sorted(cell.function.params.items())},
            "load_rps": f"{cell.rate:g}",
            "repetition": str(cell.repetition),
            "order": str(cell.order),
        }
        return plan.model_copy(update={"labels": labels})


def knee_plan(plan: StudyPlan, function: FunctionSpec, base_url: str) -> Plan:
    """The plan of an arm's knee search: a cell of the arm at the first rate tried, for the study's
    warm-up and the search's step, with constant arrivals (a step fails when fewer requests than
    planned completed; Poisson arrivals would fail it by chance)."""
    assert plan.find_max is not None
    spec = plan.find_max
    rate = spec.start_rps if spec.start_rps is not None else max(plan.load_levels)
    cell_plan = plan.cell_plan(StudyCell(function, rate, 1, 0), base_url)
    return cell_plan.model_copy(
        update={
            "name": f"{plan.name}/knee-{function.arm_name}",
            "load": OpenLoop(rate=rate, arrival="constant"),
            "duration_s": spec.step_s,
            "labels": {**cell_plan.labels, "knee": "true"},
        }
    )


def placeholder_base_url(scenario: str) -> str:
    """A stand-in for the target's address, to check a scenario before the target is known: gRPC
    for a scenario whose relative targets are gRPC methods, HTTP otherwise."""
    return _PLACEHOLDER_GRPC_URL if calls_grpc_base(scenario) else _PLACEHOLDER_BASE_URL
