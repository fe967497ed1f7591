"""The arms of a study: each entry of a plan's `functions`, its baseline, and its copies per topology.

Every entry of `functions` is an *arm* of the study, named by its function unless it says `arm:`;
that is how one function can be listed twice. An arm is compared with its baseline (`none` for
`sidecar`, `sidecar` for every other function, unless it names one); an A/A study has exactly two arms
and compares the second with the first. A plan listing topologies has every arm once per topology
(`arms_in_topologies`), each compared with its baseline in the same topology.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from .file_format import Text


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
