"""A study's capacity table (`find_max:` in its plan): each arm's knee, the highest open-loop rate
that met the objective, with the bracket [passing, failing) the knee lies in, and the change
against the arm's baseline ("mtls: 1,850 req/s [1,850, 1,950), -12% vs sidecar")."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CapacityRow:
    """One arm's knee, as the study searched it (`coordinator.study_knee`)."""

    function: str  # the arm
    topology: str = ""
    rate: float = 0.0  # the highest passing rate (0: none passed)
    failing_rate: float = 0.0  # the lowest failing rate above it (0: none failed up to the search's bound)
    steps: list[dict[str, object]] = field(default_factory=list)  # every step of the search, in order
    folder: str = ""  # the search's folder, relative to the study's
    not_supported: str = ""  # why the arm's function could not be put in force ("" when it was)

    @property
    def bracket(self) -> tuple[float, float]:
        return (self.rate, self.failing_rate)


@dataclass(frozen=True)
class CapacityLine:
    """A row of the capacity table as reports show it."""

    function: str
    topology: str
    rate: float
    failing_rate: float
    baseline: str | None
    change_pct: float | None  # against the baseline's knee (None: no baseline, or it has no knee)
    steps: int
    not_supported: str

    def describe(self) -> str:
        """ "mtls: 1,850 req/s [1,850, 1,950), -12.0% vs sidecar"."""
        if self.not_supported:
            return f"{self.function}: not supported ({self.not_supported})"
        if not self.rate:
            return f"{self.function}: no rate met the objective (the lowest tried failed)"
        high = f"{self.failing_rate:,.0f})" if self.failing_rate else "no failing rate found]"
        text = f"{self.function}: {self.rate:,.0f} req/s [{self.rate:,.0f}, {high}"
        if self.change_pct is not None:
            text += f", {self.change_pct:+.1f}% vs {self.baseline}"
        return text


def capacity_lines(rows: list[CapacityRow], baselines: dict[str, str | None]) -> list[CapacityLine]:
    """The table: each arm with its change against its baseline's knee, in the plan's order."""
    by_arm = {row.function: row for row in rows}
    lines = []
    for row in rows:
        baseline = baselines.get(row.function)
        base = by_arm.get(baseline) if baseline is not None else None
        change = (row.rate / base.rate - 1.0) * 100.0 if base is not None and base.rate and row.rate else None
        lines.append(
            CapacityLine(
                row.function,
                row.topology,
                row.rate,
                row.failing_rate,
                baseline,
                change,
                len(row.steps),
                row.not_supported,
            )
        )
    return lines
