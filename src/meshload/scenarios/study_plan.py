"""The plan of a study: which functions, at which load levels, how many times, and in what order.

A study measures what each traffic-control function costs: every function x every load level x N
repetitions, each one run ("cell") with the function alone in force, then each function compared with
its baseline. The file form (YAML or JSON):

    name: study-quick
    target: testbed              # the local testbed (BookInfo behind HAProxy sidecars), or a mesh in a
                                 # cluster: {mesh: istio, namespace: bookinfo, ingress: http://gateway}
    scenario: bookinfo-productpage   # a built-in scenario or a plan file (relative URLs)
    arrival: poisson             # open loop: constant | poisson
    load_levels: [20, 40]        # requests per second, all workers together
    repetitions: 2
    duration: 5s                 # measured part of each cell
    warmup: 2s                   # before it, excluded from the statistics
    workers: 1                   # or k8s:N, N workers of a Kubernetes fleet (scaled up for the study)
    functions:
      - none
      - sidecar
      - mtls
      - {name: rate-limit, params: {limit_rps: 1000}}   # passed to the mesh's apply()
      - {name: grpc-l4, arm: grpc-l4-4conn, connections: 4}  # client connections for this arm
    # Optional, the local testbed: every function in every topology, arms "mtls@per-node", ...
    topologies: [sidecar, per-node, ingress-only]
    # Optional: a time budget; blocks are added while an interval is wider than its target.
    budget: 15m
    target_halfwidth: p50=0.05ms,p99=0.5ms

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ..errors import PlanError, UsageError
from .file_format import Seconds, Text
from .files import calls_grpc_base, load_plan_file
from .plan import Plan
from .source import SourceDocument, read_document
from .validation import plan_error_from
from .worker_count import parse_worker_count

BUILTIN_DIR = Path(__file__).parent / "builtin"
DEFAULT_STUDY = "study-default"
QUICK_STUDY = "study-quick"
DEFAULT_SCENARIO = "bookinfo-productpage"
TARGETS_NEED_BUDGET = "target_halfwidth needs a time budget to stop within: add budget (e.g. budget: 15m)"
#: Used to check a study's scenario when the plan is loaded, before the target's address is known.
_PLACEHOLDER_BASE_URL = "http://127.0.0.1:9"
_PLACEHOLDER_GRPC_URL = "grpc://127.0.0.1:9"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FunctionSpec(_Strict):
    """One arm of a study: a traffic-control function to measure; `params` override the mesh's
    defaults for it."""

    name: str = Field(min_length=1)
    params: dict[str, Text] = {}
    # None: the usual baseline (`none` for `sidecar`, `sidecar` for every other function).
    baseline: str | None = None
    # The arm's name in the study (cells, comparisons, reports); None: the function's name.
    arm: str | None = Field(None, min_length=1)
    # Client connections per worker for this arm (the scenario's `max_connections`; for gRPC and
    # HTTP/2, the connections opened); None: the scenario's own.
    connections: int | None = Field(None, ge=1)
    # The testbed topology the arm runs in (a plan with `topologies:` has an arm per function and
    # topology, named "function@topology"); None: the one in force.
    topology: str | None = None

    @property
    def arm_name(self) -> str:
        return self.arm if self.arm is not None else self.name

    @property
    def label(self) -> str:
        """The arm plus its parameters, as shown in reports: "rate-limit(limit_rps=1000)"."""
        settings = dict(sorted(self.params.items()))
        if self.connections is not None:
            settings["connections"] = str(self.connections)
        if not settings:
            return self.arm_name
        inner = ",".join(f"{key}={value}" for key, value in settings.items())
        return f"{self.arm_name}({inner})"


def usual_baseline(function: str) -> str | None:
    """`none` has no baseline; `sidecar` is measured against `none`; every function against `sidecar`."""
    if function == "none":
        return None
    return "none" if function == "sidecar" else "sidecar"


def functions_problem(
    functions: tuple[FunctionSpec, ...] | list[FunctionSpec], *, calibrate: bool = False
) -> tuple[int, str, str] | None:
    """The first thing wrong with a list of functions: (index, key, message), or None."""
    names = [function.arm_name for function in functions]
    for index, function in enumerate(functions):
        if function.arm_name in names[:index]:
            key = "name" if function.arm is None else "arm"
            return (
                index,
                key,
                f"{function.arm_name!r} is listed twice; list each function once, or give each entry its own arm:",
            )
    if calibrate:
        return _calibration_problem(functions)
    for index, function in enumerate(functions):
        baseline = function.baseline if function.baseline is not None else usual_baseline(function.name)
        if baseline == function.name:
            return index, "baseline", f"{function.name!r} cannot be its own baseline"
        if baseline is not None and baseline not in names:
            key = "baseline" if function.baseline is not None else "name"
            return (
                index,
                key,
                (
                    f"{function.arm_name!r} is compared with {baseline!r}, which the plan does not run; "
                    f"add {baseline!r} to functions (or set a baseline that is listed)"
                ),
            )
    return None


def _calibration_problem(functions: tuple[FunctionSpec, ...] | list[FunctionSpec]) -> tuple[int, str, str] | None:
    """An A/A study has two arms and no baselines of its own: the second arm is compared with the first."""
    if len(functions) != 2:
        return 0, "name", f"an A/A study (calibrate: true) has exactly 2 arms, not {len(functions)}"
    for index, function in enumerate(functions):
        if function.baseline is not None:
            return index, "baseline", "an A/A study compares its second arm with its first; remove baseline:"
    return None


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


# -- files -------------------------------------------------------------------------------------


class FunctionEntry(_Strict):
    """An entry of `functions:` written as a mapping: `{name: rate-limit, params: {limit_rps: 1000}}`."""

    name: str = Field(min_length=1)
    params: dict[str, Text] = {}
    baseline: str | None = None
    arm: str | None = Field(None, min_length=1)
    connections: int | None = Field(None, ge=1)


class StudyFile(_Strict):
    """A study plan file, in the file's own key names (so errors point at the right line)."""

    name: str | None = None
    description: str = ""
    target: str | dict[str, object] = "testbed"  # checked by `_target`, for a message that says what fits
    scenario: str = DEFAULT_SCENARIO
    arrival: Literal["constant", "poisson"] = "poisson"
    load_levels: list[float] = Field(min_length=1)
    repetitions: int = Field(3, ge=1)
    duration: Seconds = Field(gt=0)
    warmup: Seconds = Field(2.0, ge=0)
    settle: Seconds = Field(0.5, ge=0)
    workers: int | str = 1  # N, or k8s:N (`worker_count`)
    seed: int = 0
    functions: list[str | FunctionEntry] = Field(min_length=1)
    budget: Seconds | None = Field(None, gt=0)
    target_halfwidth: str | None = None
    calibrate: bool = False
    topologies: list[str] = []


#: Checks `target_halfwidth` text, raising ValueError or UsageError with the reason (given by the
#: caller: the targets' metrics belong to `results`, which this folder does not import).
TargetsCheck = Callable[[str], object]


def builtin_study(name: str) -> Path:
    """The file of a built-in study plan ("study-default", "study-quick"; "grpc-balancing" for
    "study-grpc-balancing")."""
    stem = name.removesuffix(".yaml")
    path = BUILTIN_DIR / f"{stem}.yaml"
    if not path.is_file() and not stem.startswith("study-"):
        path = BUILTIN_DIR / f"study-{stem}.yaml"
    if "/" in name or not path.is_file() or not path.stem.startswith("study-"):
        known = ", ".join(sorted(p.stem for p in BUILTIN_DIR.glob("study-*.yaml")))
        raise PlanError(f"{name!r} is neither a study plan file nor a built-in study; built-in studies: {known}")
    return path


def load_study_plan(
    path: Path | str, overrides: dict[str, object] | None = None, *, check_targets: TargetsCheck | None = None
) -> StudyPlan:
    """Read and check a study plan file (or a built-in study's name); a problem is one PlanError
    naming the file and line. `overrides` (file key names) come from the command line;
    `check_targets` checks `target_halfwidth`."""
    path = Path(path)
    if not path.exists() and len(path.parts) == 1 and path.suffix.lower() not in (".yaml", ".yml", ".json"):
        path = builtin_study(str(path))
    document = read_document(path)
    if not isinstance(document.data, dict):
        raise document.error((), "must be a mapping (functions, load_levels, duration, ...)")
    for key, value in (overrides or {}).items():
        document.set_from((key,), value, "the command line")
    try:
        entry = StudyFile.model_validate(document.data)
    except ValidationError as exc:
        raise plan_error_from(exc, document, StudyFile) from exc
    return _to_study_plan(entry, document, path, check_targets)


TARGET_FORMS = "testbed, or a mesh in a cluster: {mesh: istio|linkerd|consul, namespace: NS, ingress: http://URL}"


def _target(entry: StudyFile, document: SourceDocument) -> Literal["testbed"] | MeshTarget:
    if entry.target == "testbed":
        return "testbed"
    if isinstance(entry.target, str):
        raise document.error(("target",), f"{entry.target!r} is not a target; use {TARGET_FORMS}")
    try:
        return MeshTarget.model_validate(entry.target)
    except ValidationError as exc:
        problem = exc.errors(include_url=False)[0]
        where = ("target", *problem["loc"])
        raise document.error(where, f"{problem['msg']}; the target is {TARGET_FORMS}") from exc


def _to_study_plan(
    entry: StudyFile, document: SourceDocument, path: Path, check_targets: TargetsCheck | None
) -> StudyPlan:
    target = _target(entry, document)
    functions = [
        FunctionSpec(name=f)
        if isinstance(f, str)
        else FunctionSpec(name=f.name, params=f.params, baseline=f.baseline, arm=f.arm, connections=f.connections)
        for f in entry.functions
    ]
    problem = functions_problem(functions, calibrate=entry.calibrate)
    if problem is not None:
        index, key, message = problem
        where = ("functions", index) if isinstance(entry.functions[index], str) else ("functions", index, key)
        raise document.error(where, message)
    functions = _topology_arms(entry, document, functions)
    levels = entry.load_levels
    for index, level in enumerate(levels):
        if level <= 0:
            raise document.error(("load_levels", index), f"must be a rate above 0 requests per second (got {level:g})")
        if level in levels[:index]:
            raise document.error(("load_levels", index), f"{level:g} is listed twice; list each load level once")
    if entry.target_halfwidth:
        if entry.budget is None:
            raise document.error(("target_halfwidth",), TARGETS_NEED_BUDGET)
        if check_targets is not None:
            try:
                check_targets(entry.target_halfwidth)
            except (ValueError, UsageError) as exc:
                raise document.error(("target_halfwidth",), str(exc)) from exc
    scenario = _scenario_source(entry.scenario, path)
    try:
        workers = parse_worker_count(entry.workers)
    except ValueError as exc:
        raise document.error(("workers",), str(exc)) from exc
    try:
        plan = StudyPlan(
            name=entry.name or path.stem,
            description=entry.description,
            target=target,
            scenario=scenario,
            arrival=entry.arrival,
            load_levels=tuple(levels),
            repetitions=entry.repetitions,
            duration_s=entry.duration,
            warmup_s=entry.warmup,
            settle_s=entry.settle,
            workers=workers.count,
            kubernetes_workers=workers.kubernetes,
            seed=entry.seed,
            functions=tuple(functions),
            budget_s=entry.budget,
            target_halfwidth=entry.target_halfwidth or "",
            calibrate=entry.calibrate,
            topologies=tuple(entry.topologies),
        )
    except ValidationError as exc:  # a rule of StudyPlan that the file model does not repeat
        raise document.error((), exc.errors(include_url=False)[0]["msg"]) from exc
    # Check the scenario now, not at the first cell, so a bad scenario costs no testbed start.
    try:
        plan.cell_plan(plan.cells()[0], placeholder_base_url(plan.scenario))
    except PlanError as exc:
        raise document.error(("scenario",), str(exc)) from exc
    return plan


def _topology_arms(entry: StudyFile, document: SourceDocument, functions: list[FunctionSpec]) -> list[FunctionSpec]:
    """The plan's arms, once per topology when it lists topologies (checked here; their names are
    the testbed's, checked when the study starts)."""
    for index, topology in enumerate(entry.topologies):
        if topology in entry.topologies[:index]:
            raise document.error(("topologies", index), f"{topology!r} is listed twice; list each topology once")
    if not entry.topologies:
        return functions
    if entry.calibrate:
        raise document.error(("topologies",), "an A/A study runs in one topology; remove topologies:")
    return arms_in_topologies(functions, entry.topologies)


def arms_in_topologies(functions: list[FunctionSpec], topologies: list[str]) -> list[FunctionSpec]:
    """Every arm once per topology, topology by topology: "mtls" becomes "mtls@sidecar",
    "mtls@per-node", ..., each compared with its baseline in the same topology."""
    arms = []
    for topology in topologies:
        for function in functions:
            baseline = function.baseline if function.baseline is not None else usual_baseline(function.name)
            arms.append(
                function.model_copy(
                    update={
                        "arm": f"{function.arm_name}@{topology}",
                        "baseline": f"{baseline}@{topology}" if baseline is not None else None,
                        "topology": topology,
                    }
                )
            )
    return arms


def placeholder_base_url(scenario: str) -> str:
    """A stand-in for the target's address, to check a scenario before the target is known: gRPC
    for a scenario whose relative targets are gRPC methods, HTTP otherwise."""
    return _PLACEHOLDER_GRPC_URL if calls_grpc_base(scenario) else _PLACEHOLDER_BASE_URL


def _scenario_source(scenario: str, study_path: Path) -> str:
    """A scenario file named relative to the study file is found beside it; a built-in name stays."""
    candidate = Path(scenario)
    if candidate.is_absolute() or candidate.exists():
        return str(candidate.resolve()) if candidate.exists() else scenario
    beside = study_path.parent / candidate
    return str(beside.resolve()) if beside.exists() else scenario
