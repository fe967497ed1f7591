"""How many workers a run or study asks for, and where they come from: `N` (local processes or idle
fleet workers) or `k8s:N` (the worker Deployment of a Kubernetes fleet, scaled to N for the run).

The same words on the command line (`--workers k8s:4`) and in a study plan (`workers: k8s:4`)."""

from __future__ import annotations

from dataclasses import dataclass

#: The prefix of a count of Kubernetes workers.
KUBERNETES_PREFIX = "k8s:"


@dataclass(frozen=True)
class WorkerCount:
    count: int
    kubernetes: bool = False  # the fleet's Deployment is scaled to `count` and its workers are waited for

    def __str__(self) -> str:
        return f"{KUBERNETES_PREFIX}{self.count}" if self.kubernetes else str(self.count)


def parse_worker_count(value: str | int) -> WorkerCount:
    """`4` or `"4"` or `"k8s:4"`; ValueError (its text says what to write) for anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise ValueError(f"{value!r} is not a worker count; use N or k8s:N")
    kubernetes = text.lower().startswith(KUBERNETES_PREFIX)
    digits = text[len(KUBERNETES_PREFIX) :] if kubernetes else text
    if not (digits.isascii() and digits.isdigit()) or int(digits) < 1:
        shown = text or "an empty value"
        raise ValueError(f"{shown} is not a worker count; use N or k8s:N (N: 1 or more)")
    return WorkerCount(int(digits), kubernetes)
