"""Keeping the generator and the mesh on separate CPUs: the decision for machines of every size, and
pinning real processes (every thread, and children) on this one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import suppress

import pytest

from meshload.coordinator.cpu_pinning import (
    CpuSplit,
    available_cpus,
    pin_process_tree,
    plan_pinning,
    thread_affinities,
)


def test_the_split_gives_the_generator_its_own_cpus_only_where_the_mesh_keeps_two() -> None:
    two = plan_pinning(1, available=[0, 1])
    assert two.split is None and "2 CPUs are too few" in two.note and "needs 3" in two.note
    assert two.describe() == {"pinned": False, "generator_cpus": [], "mesh_cpus": [], "note": two.note}
    three = plan_pinning(1, available=[0, 1, 2])
    assert three.split == CpuSplit(generator=(2,), mesh=(0, 1))
    assert three.describe()["pinned"] is True and "generator (workers, coordinator, its Redis) on CPU 2" in three.note
    # Two workers need two CPUs of their own; a container's CPU list need not start at 0.
    eight = plan_pinning(2, available=[4, 5, 6, 7, 8, 9, 10, 11])
    assert eight.split == CpuSplit(generator=(10, 11), mesh=(4, 5, 6, 7, 8, 9))
    assert plan_pinning(2, available=[0, 1, 2]).split is None
    # Turned off, or a mesh elsewhere: nothing to pin; a given split is taken as it is.
    assert plan_pinning(1, available=range(16), enabled=False).note == "not pinned: turned off"
    assert "does not run on this machine" in plan_pinning(1, available=range(16), local_mesh=False).note
    given = CpuSplit(generator=(1,), mesh=(0,))
    assert plan_pinning(1, available=[0, 1], split=given).split == given


_THREADED_CHILD = """
import subprocess, sys, threading, time
threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
print(grandchild.pid, flush=True)
time.sleep(30)
"""


@pytest.mark.skipif(len(available_cpus()) < 2, reason="pinning to a subset needs 2 CPUs; this machine has 1")
def test_every_thread_and_child_of_a_process_is_pinned_and_can_be_put_back() -> None:
    cpus = available_cpus()
    child = subprocess.Popen([sys.executable, "-c", _THREADED_CHILD], stdout=subprocess.PIPE, text=True)
    grandchild = 0
    try:
        assert child.stdout is not None
        grandchild = int(child.stdout.readline())
        deadline = time.monotonic() + 10
        while len(thread_affinities(child.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(thread_affinities(child.pid)) >= 3  # the main thread and the two sleepers

        pinned = pin_process_tree(child.pid, [cpus[-1]])
        assert sorted(pinned) == sorted([child.pid, grandchild])
        for pid in (child.pid, grandchild):
            assert all(cpu_set == {cpus[-1]} for cpu_set in thread_affinities(pid).values()), pid
        pin_process_tree(child.pid, cpus)
        assert all(cpu_set == set(cpus) for cpu_set in thread_affinities(child.pid).values())
    finally:
        child.kill()
        child.wait()
        if grandchild:
            with suppress(ProcessLookupError):
                os.kill(grandchild, signal.SIGKILL)
    # A process that is gone pins nothing and raises nothing.
    assert pin_process_tree(child.pid, cpus) == []
    assert os.sched_getaffinity(0) == set(cpus)  # this process was never touched
