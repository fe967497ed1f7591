"""The plan of a study: which functions, at which load levels, how many times, and in what order.

A study measures what each traffic-control function costs: every function x every load level x N
repetitions, each one run ("cell") with the function alone in force, then each function compared with
its baseline. The file form (YAML or JSON):

    name: study-quick
    target: testbed              # the local testbed (BookInfo behind HAProxy sidecars)
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

Cells run interleaved (`cells()`): for each repetition, for each load level, every function once in
an order shuffled with the plan's seed. A slow drift of a shared machine (another job, thermal
throttling) then spreads over every function instead of landing on whichever ran last.
"""

from __future__ import annotations

import random
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

from ..errors import PlanError
from .file_format import Seconds, Text
from .files import load_plan_file
from .plan import Plan
from .source import SourceDocument, read_document
from .validation import plan_error_from
from .worker_count import parse_worker_count

BUILTIN_DIR = Path(__file__).parent / "builtin"
DEFAULT_STUDY = "study-default"
QUICK_STUDY = "study-quick"
DEFAULT_SCENARIO = "bookinfo-productpage"
#: Used to check a study's scenario when the plan is loaded, before the target's address is known.
_PLACEHOLDER_BASE_URL = "http://127.0.0.1:9"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FunctionSpec(_Strict):
    """One traffic-control function to measure; `params` override the mesh's defaults for it."""

    name: str = Field(min_length=1)
    params: dict[str, Text] = {}
    # None: the usual baseline (`none` for `sidecar`, `sidecar` for every other function).
    baseline: str | None = None

    @property
    def label(self) -> str:
        """The name plus its parameters, as shown in reports: "rate-limit(limit_rps=1000)"."""
        if not self.params:
            return self.name
        inner = ",".join(f"{key}={value}" for key, value in sorted(self.params.items()))
        return f"{self.name}({inner})"


def usual_baseline(function: str) -> str | None:
    """`none` has no baseline; `sidecar` is measured against `none`; every function against `sidecar`."""
    if function == "none":
        return None
    return "none" if function == "sidecar" else "sidecar"


def functions_problem(functions: tuple[FunctionSpec, ...] | list[FunctionSpec]) -> tuple[int, str, str] | None:
    """The first thing wrong with a list of functions: (index, key, message), or None."""
    names = [function.name for function in functions]
    for index, function in enumerate(functions):
        if function.name in names[:index]:
            return index, "name", f"{function.name!r} is listed twice; list each function once"
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
                    f"{function.name!r} is compared with {baseline!r}, which the plan does not run; "
                    f"add {baseline!r} to functions (or set a baseline that is listed)"
                ),
            )
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
        return f"{self.order:03d}-{self.function.name}-{self.rate:g}rps-r{self.repetition}"


class StudyPlan(_Strict):
    """Everything that defines a study; `cells()` gives its runs in their order."""

    name: str = "study"
    description: str = ""
    target: Literal["testbed"] = "testbed"
    # A built-in scenario's name or a plan file; its relative URLs are joined to the target's ingress,
    # and its load, duration and warm-up are replaced by the study's.
    scenario: str = DEFAULT_SCENARIO
    arrival: Literal["constant", "poisson"] = "poisson"
    load_levels: tuple[float, ...] = Field(min_length=1, description="requests per second")
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
        problem = functions_problem(self.functions)
        if problem is not None:
            raise ValueError(f"functions[{problem[0]}]: {problem[2]}")
        return self

    # -- derived -------------------------------------------------------------------------------

    def baseline_of(self, function: str) -> str | None:
        """The function a function is compared with (None for `none`)."""
        for spec in self.functions:
            if spec.name == function and spec.baseline is not None:
                return spec.baseline
        return usual_baseline(function)

    def baselines(self) -> dict[str, str | None]:
        return {function.name: self.baseline_of(function.name) for function in self.functions}

    def cells(self) -> list[StudyCell]:
        """Every cell in run order: repetition-major, then load level, then functions shuffled.

        The shuffle of each (repetition, level) block has its own seeded generator, so the order is
        the same every time the plan is run, and different from block to block.
        """
        cells: list[StudyCell] = []
        for repetition in range(1, self.repetitions + 1):
            for level_index, rate in enumerate(self.load_levels):
                functions = list(self.functions)
                random.Random(f"{self.seed}/{repetition}/{level_index}").shuffle(functions)
                for function in functions:
                    cells.append(StudyCell(function, rate, repetition, len(cells)))
        return cells

    @property
    def cell_s(self) -> float:
        """How long each cell sends load: warm-up plus measured part."""
        return self.warmup_s + self.duration_s

    def cell_plan(self, cell: StudyCell, base_url: str) -> Plan:
        """The run plan of one cell: the scenario sent to `base_url` (the target's ingress) at the
        cell's rate, for the study's warm-up and duration."""
        overrides: dict[str | tuple[str, ...], object] = {
            "base_url": base_url,
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


class StudyFile(_Strict):
    """A study plan file, in the file's own key names (so errors point at the right line)."""

    name: str | None = None
    description: str = ""
    target: Literal["testbed"] = "testbed"
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


def builtin_study(name: str) -> Path:
    """The file of a built-in study plan ("study-default", "study-quick")."""
    path = BUILTIN_DIR / f"{name.removesuffix('.yaml')}.yaml"
    if "/" in name or not path.is_file() or not path.stem.startswith("study-"):
        known = ", ".join(sorted(p.stem for p in BUILTIN_DIR.glob("study-*.yaml")))
        raise PlanError(f"{name!r} is neither a study plan file nor a built-in study; built-in studies: {known}")
    return path


def load_study_plan(path: Path | str, overrides: dict[str, object] | None = None) -> StudyPlan:
    """Read and check a study plan file (or a built-in study's name); a problem is one PlanError
    naming the file and line. `overrides` (file key names) come from the command line."""
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
    return _to_study_plan(entry, document, path)


def _to_study_plan(entry: StudyFile, document: SourceDocument, path: Path) -> StudyPlan:
    functions = [
        FunctionSpec(name=f) if isinstance(f, str) else FunctionSpec(name=f.name, params=f.params, baseline=f.baseline)
        for f in entry.functions
    ]
    problem = functions_problem(functions)
    if problem is not None:
        index, key, message = problem
        where = ("functions", index) if isinstance(entry.functions[index], str) else ("functions", index, key)
        raise document.error(where, message)
    levels = entry.load_levels
    for index, level in enumerate(levels):
        if level <= 0:
            raise document.error(("load_levels", index), f"must be a rate above 0 requests per second (got {level:g})")
        if level in levels[:index]:
            raise document.error(("load_levels", index), f"{level:g} is listed twice; list each load level once")
    scenario = _scenario_source(entry.scenario, path)
    try:
        workers = parse_worker_count(entry.workers)
    except ValueError as exc:
        raise document.error(("workers",), str(exc)) from exc
    try:
        plan = StudyPlan(
            name=entry.name or path.stem,
            description=entry.description,
            target=entry.target,
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
        )
    except ValidationError as exc:  # a rule of StudyPlan that the file model does not repeat
        raise document.error((), exc.errors(include_url=False)[0]["msg"]) from exc
    # Check the scenario now, not at the first cell, so a bad scenario costs no testbed start.
    try:
        plan.cell_plan(plan.cells()[0], _PLACEHOLDER_BASE_URL)
    except PlanError as exc:
        raise document.error(("scenario",), str(exc)) from exc
    return plan


def _scenario_source(scenario: str, study_path: Path) -> str:
    """A scenario file named relative to the study file is found beside it; a built-in name stays."""
    candidate = Path(scenario)
    if candidate.is_absolute() or candidate.exists():
        return str(candidate.resolve()) if candidate.exists() else scenario
    beside = study_path.parent / candidate
    return str(beside.resolve()) if beside.exists() else scenario
