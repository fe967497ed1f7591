"""Keeping the load generator and the local mesh on separate CPUs, where the machine has enough.

On a shared CPU the generator is scheduled late whenever a proxy or an application runs, and its
lateness lands in every corrected latency; the mesh, in turn, is slowed by the generator. With enough
CPUs a study gives the generator side (its workers, and the coordinator and private Redis that serve
them) CPUs of its own and the testbed's processes the rest. With too few (2 cores: one for the
generator would leave one for thirteen testbed processes) nothing is pinned, the generator runs
ahead of the mesh in priority, and the study's environment says so.

Affinity is set per thread (`sched_setaffinity` on Linux applies to one thread), on every thread a
process has and on its children; threads started later inherit it. The testbed restarts its proxies
when a function is applied, so the mesh is pinned again after every apply.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass

#: The fewest CPUs the mesh side gets: BookInfo's services and its proxies are a dozen processes.
MIN_MESH_CPUS = 2


@dataclass(frozen=True)
class CpuSplit:
    """Which CPUs the generator side and the mesh side may use."""

    generator: tuple[int, ...]
    mesh: tuple[int, ...]


@dataclass(frozen=True)
class CpuPinning:
    """The decision for one study: a split, or none and why."""

    split: CpuSplit | None
    note: str

    def describe(self) -> dict[str, object]:
        """For the study's environment."""
        return {
            "pinned": self.split is not None,
            "generator_cpus": list(self.split.generator) if self.split else [],
            "mesh_cpus": list(self.split.mesh) if self.split else [],
            "note": self.note,
        }


def available_cpus() -> list[int]:
    """The CPUs this process may run on (a container's or a taskset's limit included)."""
    return sorted(os.sched_getaffinity(0))


def plan_pinning(
    workers: int,
    *,
    available: Sequence[int] | None = None,
    enabled: bool = True,
    local_mesh: bool = True,
    split: CpuSplit | None = None,
) -> CpuPinning:
    """Decide how to pin a study with `workers` local workers: `split` when given, else the last
    `workers` CPUs for the generator (CPU 0 takes more of the machine's interrupts) and the rest for
    the mesh, when that leaves the mesh `MIN_MESH_CPUS`."""
    cpus = available_cpus() if available is None else sorted(available)
    if not enabled:
        return CpuPinning(None, "not pinned: turned off")
    if not local_mesh:
        return CpuPinning(None, "not pinned: the mesh does not run on this machine")
    if split is not None:
        return CpuPinning(split, _pinned_note(split))
    needed = workers + MIN_MESH_CPUS
    if len(cpus) < needed:
        return CpuPinning(
            None,
            f"not pinned: {len(cpus)} CPUs are too few to give the generator ({workers} worker(s)) CPUs of its own "
            f"and the mesh at least {MIN_MESH_CPUS} (needs {needed}); they share every CPU, the generator ahead "
            "of the mesh in priority",
        )
    chosen = CpuSplit(generator=tuple(cpus[-workers:]), mesh=tuple(cpus[:-workers]))
    return CpuPinning(chosen, _pinned_note(chosen))


def _pinned_note(split: CpuSplit) -> str:
    return (
        f"pinned: generator (workers, coordinator, its Redis) on CPU {_cpu_list(split.generator)}, "
        f"mesh on CPU {_cpu_list(split.mesh)}"
    )


def _cpu_list(cpus: Iterable[int]) -> str:
    return ",".join(str(cpu) for cpu in cpus)


def pin_process_tree(pid: int, cpus: Iterable[int]) -> list[int]:
    """Pin every thread of process `pid` and of its descendants to `cpus`; the pids pinned (a
    process that exited meanwhile is skipped)."""
    import psutil

    allowed = set(cpus)
    try:
        root = psutil.Process(pid)
        family = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    pinned = []
    for process in family:
        with suppress(psutil.NoSuchProcess, ProcessLookupError):
            for thread in process.threads():
                with suppress(ProcessLookupError):  # a thread that just ended
                    os.sched_setaffinity(thread.id, allowed)
            pinned.append(process.pid)
    return pinned


def thread_affinities(pid: int) -> dict[int, set[int]]:
    """The CPUs each thread of process `pid` may run on, by thread id."""
    import psutil

    found = {}
    for thread in psutil.Process(pid).threads():
        with suppress(ProcessLookupError):
            found[thread.id] = set(os.sched_getaffinity(thread.id))
    return found
