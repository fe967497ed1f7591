"""Study plan files: reading one (or a built-in study) into a `StudyPlan`, a problem being one
PlanError naming the file and line. The file form (YAML or JSON):

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
    # Optional: after the latency cells, each arm's knee (the highest rate meeting the objective),
    # searched in steps of `step` from `start` (default: the highest load level), never above `max`.
    find_max: {slo: p99<50ms, errors: <0.1%, precision: 0.05, step: 5s}
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import PlanError, UsageError
from .file_format import Seconds, Text
from .slo import parse_slo
from .source import SourceDocument, read_document
from .study_arms import FunctionSpec, arms_in_topologies, functions_problem
from .study_plan import (
    DEFAULT_SCENARIO,
    TARGETS_NEED_BUDGET,
    KneeSpec,
    MeshTarget,
    StudyPlan,
    placeholder_base_url,
)
from .validation import plan_error_from
from .worker_count import parse_worker_count

BUILTIN_DIR = Path(__file__).parent / "builtin"
DEFAULT_STUDY = "study-default"
QUICK_STUDY = "study-quick"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FunctionEntry(_Strict):
    """An entry of `functions:` written as a mapping: `{name: rate-limit, params: {limit_rps: 1000}}`."""

    name: str = Field(min_length=1)
    params: dict[str, Text] = {}
    baseline: str | None = None
    arm: str | None = Field(None, min_length=1)
    connections: int | None = Field(None, ge=1)


class KneeEntry(_Strict):
    """`find_max:` in the file's key names (`StudyPlan.find_max` once checked)."""

    slo: str = Field(min_length=1)
    errors: str | None = None
    precision: float = Field(0.05, gt=0, lt=1)
    step: Seconds = Field(5.0, gt=0)
    start: float | None = Field(None, gt=0)
    max: float | None = Field(None, gt=0)
    repeats: int = Field(3, ge=1)


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
    find_max: KneeEntry | None = None


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
    path: Path | str,
    overrides: dict[str | tuple[str, ...], object] | None = None,
    *,
    check_targets: TargetsCheck | None = None,
) -> StudyPlan:
    """Read and check a study plan file (or a built-in study's name); a problem is one PlanError
    naming the file and line. `overrides` (file key names) come from the command line;
    `check_targets` checks `target_halfwidth`; a tuple key sets a nested key (("find_max", "slo"))."""
    path = Path(path)
    if not path.exists() and len(path.parts) == 1 and path.suffix.lower() not in (".yaml", ".yml", ".json"):
        path = builtin_study(str(path))
    document = read_document(path)
    if not isinstance(document.data, dict):
        raise document.error((), "must be a mapping (functions, load_levels, duration, ...)")
    for key, value in (overrides or {}).items():
        document.set_from(key if isinstance(key, tuple) else (key,), value, "the command line")
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
    knee = _knee(entry, document)
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
            find_max=knee,
        )
    except ValidationError as exc:  # a rule of StudyPlan that the file model does not repeat
        raise document.error((), exc.errors(include_url=False)[0]["msg"]) from exc
    # Check the scenario now, not at the first cell, so a bad scenario costs no testbed start.
    try:
        plan.cell_plan(plan.cells()[0], placeholder_base_url(plan.scenario))
    except PlanError as exc:
        raise document.error(("scenario",), str(exc)) from exc
    return plan


def _knee(entry: StudyFile, document: SourceDocument) -> KneeSpec | None:
    """`find_max:` checked: its objective's text (the rest is checked by its model)."""
    knee = entry.find_max
    if knee is None:
        return None
    if entry.calibrate:
        raise document.error(("find_max",), "an A/A study measures no capacity; remove find_max: or calibrate:")
    try:
        parse_slo(knee.slo, knee.errors, names=("find_max.slo", "find_max.errors"))
    except UsageError as exc:
        key = "slo" if str(exc).startswith("find_max.slo") else "errors"
        raise document.error(("find_max", key), str(exc).split(": ", 1)[1]) from exc
    return KneeSpec(
        slo=knee.slo,
        errors=knee.errors,
        precision=knee.precision,
        step_s=knee.step,
        start_rps=knee.start,
        max_rps=knee.max,
        repeats=knee.repeats,
    )


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


def _scenario_source(scenario: str, study_path: Path) -> str:
    """A scenario file named relative to the study file is found beside it; a built-in name stays."""
    candidate = Path(scenario)
    if candidate.is_absolute() or candidate.exists():
        return str(candidate.resolve()) if candidate.exists() else scenario
    beside = study_path.parent / candidate
    return str(beside.resolve()) if beside.exists() else scenario
