"""Resource sampling of real processes: CPU time over the window and resident memory."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest

from meshload.coordinator.mesh.resources import ProcessSampler

_BURN = "import time\nend = time.monotonic() + 30\nwhile time.monotonic() < end: pass\n"
_HOLD = "import time\nblock = bytearray(64 * 1024 * 1024)\nblock[::4096] = b'x' * len(block[::4096])\ntime.sleep(30)\n"


def test_sampler_separates_a_busy_group_from_an_idle_one():
    burner = subprocess.Popen([sys.executable, "-c", _BURN])
    holder = subprocess.Popen([sys.executable, "-c", _HOLD])
    try:
        time.sleep(0.3)  # the holder has touched its 64 MiB
        groups = {
            "busy": [burner.pid],
            "idle": [holder.pid],
            "gone": [2**22 + 17],
        }  # a pid that does not exist
        before = psutil.Process(burner.pid).cpu_times()
        sampler = ProcessSampler(lambda: groups, interval_s=0.2).start()
        time.sleep(1.2)
        usage = sampler.stop()
        after = psutil.Process(burner.pid).cpu_times()
    finally:
        for process in (burner, holder):
            process.kill()
            process.wait()
    busy, idle = usage["busy"], usage["idle"]
    assert busy.count == 1 and idle.count == 1 and usage["gone"].count == 0
    # what the process's own accounting says it used over (about) the same window
    used_mcores = 1000 * (after.user + after.system - before.user - before.system) / sampler.window_s
    assert busy.cpu_mcores == pytest.approx(used_mcores, rel=0.2, abs=30)
    assert busy.cpu_mcores <= 1100 and busy.cpu_mcores_max >= busy.cpu_mcores * 0.9
    assert idle.cpu_mcores < min(100, busy.cpu_mcores)
    assert idle.mem_mb > 64 and idle.mem_mb_max >= idle.mem_mb
    assert busy.mem_mb < idle.mem_mb
    assert 1.0 < sampler.window_s < 5.0


def test_sampler_follows_a_process_replaced_during_the_window():
    first = subprocess.Popen([sys.executable, "-c", _BURN])
    current = {"proxy": [first.pid]}
    sampler = ProcessSampler(lambda: current, interval_s=0.1).start()
    second = None
    try:
        time.sleep(0.5)
        second = subprocess.Popen([sys.executable, "-c", _BURN])
        current["proxy"] = [second.pid]  # a reload: the new process takes over
        first.kill()
        time.sleep(0.6)
        second_cpu_s = sum(psutil.Process(second.pid).cpu_times()[:2])
        usage = sampler.stop()
        sampler_window_s = sampler.window_s
    finally:
        for process in (first, second):
            if process is not None:
                process.kill()
                process.wait()
    # both halves of the window are counted, not only the process running at the end
    assert usage["proxy"].count == 1
    assert usage["proxy"].cpu_mcores * sampler_window_s > 1000 * second_cpu_s * 1.2
