"""Benchmark: do N meshload workers on N cores scale linearly? As far as a 2-core machine can say.

Not a test: it prints a table. One nginx (the one of `bench_engine.py`: one worker process, a static
200 answer, on a free loopback port) and meshload's engine in the open loop, run the way
`bench_engine.py` runs one worker (its child process, `meshload_child`: the engine directly, full
recording, no coordinator), N such processes at once, each pinned to its own CPU with `taskset`, each
at the same rate R. N=1 and N=2 (or `--workers`) alternate for `--rounds` rounds (1, 2 then 2, 1, ...,
so that a drift of the machine weighs on both alike); every run stops by itself after `--seconds`.
The N processes of a run start their engines at one agreed instant, after their imports.

For every worker: the rate it sent (full intervals), its schedule-lag p99, whether it held (lag p99 under
1 ms, the rate within 1 %, no errors: `open_loop_holds`), and its busy CPU per request (the run's CPU
minus the polling passes for near instants, as `bench_engine.py` computes it; the fold process's CPU
apart). Then the scaling of each round against the N=1 run of the same round: the total rate sent /
(N x the N=1 rate), and the busy CPU per request with N workers / with one (1.00: each request costs
the same however many workers run beside it). And where the machine's CPU went during each run: the
workers, nginx, every other process (neighbours), and what the hypervisor took from this virtual
machine (steal).

The target has no cores of its own here: by default it may run on any CPU (`--target-cpus all`; or
`--target-cpus 0` to keep it on CPU 0), so with N=2 it takes its share of the workers' cores.

    python bench/bench_scale.py [--rate 10000] [--seconds 5] [--rounds 2] [--workers 1,2]
                                [--target-cpus all|0,...] [--arrival constant|poisson]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench_engine import (
    LAG_P99_LIMIT_MS,
    RATE_TOLERANCE,
    Nginx,
    meshload_child,
    meshload_command,
    open_loop_holds,
    pinned,
)
from bench_results import add_save_option, note_start, save_results

#: The workers import meshload within this many seconds after they are started; their engines then
#: start together (a worker that was not ready in time starts late, and says by how much).
IMPORT_LEAD_S = 2.5
#: Steal above this (cores) is pointed out under a run: the figures then include the hypervisor's pauses.
STEAL_NOTICE_CORES = 0.05


@dataclass
class Worker:
    """One worker process of a run: its CPU and what it reported (`meshload_child`'s figures)."""

    cpu: int | None
    figures: dict[str, Any]
    late_start_ms: float
    rate: float

    @property
    def busy_s(self) -> float:
        return self.figures["run_cpu_s"] - self.figures["spin_s"]

    @property
    def completed(self) -> int:
        return int(self.figures["completed"])

    @property
    def sent_rate(self) -> float:
        return float(self.figures["sent_rate_full_intervals"])

    @property
    def holds(self) -> bool:
        return open_loop_holds(self.figures, self.rate)


@dataclass
class Run:
    """N workers at once, and where the machine's CPU went meanwhile (in cores, over the run's window)."""

    round_i: int
    workers: list[Worker]
    window_s: float
    nginx_cores: float
    others_cores: float
    steal_cores: float

    @property
    def n(self) -> int:
        return len(self.workers)

    @property
    def sent_rate(self) -> float:
        return sum(worker.sent_rate for worker in self.workers)

    @property
    def busy_us_per_request(self) -> float:
        completed = sum(worker.completed for worker in self.workers)
        return sum(worker.busy_s for worker in self.workers) * 1e6 / completed if completed else float("nan")

    @property
    def worker_cores(self) -> float:
        """The workers' CPU (their runs and fold processes) in cores over the window."""
        cpu_s = sum(worker.figures["run_cpu_s"] + worker.figures["fold_cpu_s"] for worker in self.workers)
        return cpu_s / self.window_s

    @property
    def holds(self) -> bool:
        return all(worker.holds for worker in self.workers)


# -- the worker process ----------------------------------------------------------------------------


def worker_child(args: argparse.Namespace) -> None:
    """Runs in a worker process: imports, waits for the agreed instant, then `bench_engine`'s child run."""
    import importlib

    from meshload.scenarios.plan import Plan
    from meshload.worker.engines import pick_engine

    # What meshload_child imports before its run, so that the engines of all workers start together.
    for module in ("meshload.results.histogram", "meshload.worker.standalone"):
        importlib.import_module(module)
    load = {"kind": "open", "rate": args.rate, "arrival": args.arrival}
    pick_engine(Plan(targets=[{"url": args.url}], load=load, duration_s=args.seconds))
    late_s = time.monotonic() - args.start_at
    if late_s < 0:
        time.sleep(-late_s)
    print(json.dumps({"late_start_ms": max(late_s, 0.0) * 1000}), flush=True)
    meshload_child(args)


def worker_command(url: str, seconds: float, rate: float, arrival: str, start_at: float) -> list[str]:
    """`bench_engine`'s child command line, run through this script (which waits for `start_at` first)."""
    command = meshload_command(url, seconds, rate, arrival=arrival)
    return [command[0], __file__, *command[2:], "--start-at", repr(start_at)]


# -- a run of N workers ----------------------------------------------------------------------------


def tree_cpu_s(process: psutil.Process) -> float:
    """User+system CPU seconds of `process` and its children (nginx: the master and its worker)."""
    total = 0.0
    for member in [process, *process.children(recursive=True)]:
        try:
            times = member.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def others_cpu_s() -> dict[tuple[int, float], float]:
    """User+system CPU seconds of every process outside this benchmark's tree (nginx and the workers
    are its children), by process id and creation time. Their own run times, as the workers' are: the
    machine's counters (/proc/stat) are sampled at each tick, and disagree with them by tenths of a
    core for processes that wake thousands of times a second."""
    ours = {os.getpid(), *(child.pid for child in psutil.Process().children(recursive=True))}
    times = {}
    for process in psutil.process_iter():
        if process.pid in ours:
            continue
        try:
            cpu = process.cpu_times()
            times[process.pid, process.create_time()] = cpu.user + cpu.system
        except psutil.Error:
            continue
    return times


def others_delta_s(before: dict[tuple[int, float], float], after: dict[tuple[int, float], float]) -> float:
    """The other processes' CPU between two samples (those that started and ended in between are not seen)."""
    return sum(cpu_s - before.get(key, 0.0) for key, cpu_s in after.items())


def sleep_until(instant: float) -> None:
    time.sleep(max(instant - time.monotonic(), 0.0))


def run_workers(
    round_i: int,
    url: str,
    cpus: list[int | None],
    seconds: float,
    rate: float,
    arrival: str,
    nginx: psutil.Process,
    workdir: Path,
) -> Run:
    """One run: a worker per entry of `cpus` (pinned there), all at `rate`; each worker's figures, and
    the CPU of nginx, of every other process and the steal over the run."""
    from meshload.worker.standalone import START_LEAD_S

    start_at = time.monotonic() + IMPORT_LEAD_S
    processes = []
    for index, cpu in enumerate(cpus):
        prefix = pinned(cpu) if cpu is not None else []
        command = [*prefix, *worker_command(url, seconds, rate, arrival, start_at)]
        with (workdir / f"out{index}").open("w") as out, (workdir / f"err{index}").open("w") as err:
            processes.append(subprocess.Popen(command, stdout=out, stderr=err, text=True))
    # The window: from just after the agreed instant (the engines start START_LEAD_S after it: this
    # sampling is not in their run) to the end of their run.
    sleep_until(start_at + START_LEAD_S / 4)
    started = time.monotonic()
    nginx_before, others_before, steal_before = tree_cpu_s(nginx), others_cpu_s(), psutil.cpu_times().steal
    sleep_until(start_at + START_LEAD_S + seconds)
    nginx_after, others_after, steal_after = tree_cpu_s(nginx), others_cpu_s(), psutil.cpu_times().steal
    window_s = time.monotonic() - started
    workers = []
    for index, (cpu, process) in enumerate(zip(cpus, processes, strict=True)):
        if process.wait(timeout=seconds + 60) != 0:
            stderr = (workdir / f"err{index}").read_text()
            raise RuntimeError(f"worker {index} failed ({process.returncode}): {stderr.strip()[-500:]}")
        lines = [line for line in (workdir / f"out{index}").read_text().splitlines() if line.startswith("{")]
        workers.append(Worker(cpu, json.loads(lines[-1]), json.loads(lines[0])["late_start_ms"], rate))
    return Run(
        round_i,
        workers,
        window_s,
        (nginx_after - nginx_before) / window_s,
        others_delta_s(others_before, others_after) / window_s,
        (steal_after - steal_before) / window_s,
    )


def measure(
    url: str, counts: list[int], cpus: list[int | None], args: argparse.Namespace, nginx: psutil.Process, workdir: Path
) -> list[Run]:
    """Every N of `counts` once per round, in alternating order (1, 2 then 2, 1, ...)."""
    runs = []
    for round_i in range(args.rounds):
        for n in counts if round_i % 2 == 0 else list(reversed(counts)):
            run = run_workers(round_i, url, cpus[:n], args.seconds, args.rate, args.arrival, nginx, workdir)
            print_run(run)
            runs.append(run)
    return runs


# -- printing --------------------------------------------------------------------------------------


def print_run(run: Run) -> None:
    print(f"\n round {run.round_i + 1}, N={run.n} worker(s) at {run.workers[0].rate:,.0f} rps each:")
    for index, worker in enumerate(run.workers):
        figures = worker.figures
        elapsed = figures["elapsed_s"] or 1.0
        completed = max(worker.completed, 1)
        late = f", started {worker.late_start_ms:.0f} ms late" if worker.late_start_ms >= 1 else ""
        print(
            f"  worker {index} (CPU {'any' if worker.cpu is None else worker.cpu}): "
            f"sent {worker.sent_rate:,.0f}/s, lag p99 {figures['lag_p99_ms']:.3f} ms "
            f"(p99.9 {figures['lag_p999_ms']:.3f}), late {figures['late']:,}, errors {sum(figures['errors'].values())}"
            f" -> {'holds' if worker.holds else 'DOES NOT HOLD'}\n"
            f"    CPU {figures['run_cpu_s'] / elapsed:.0%} of its core (polling {figures['spin_s'] / elapsed:.0%}), "
            f"busy {worker.busy_s * 1e6 / completed:.1f} us/req, fold process "
            f"{figures['fold_cpu_s'] * 1e6 / completed:.1f} us/req{late}"
        )
    print(
        f"  CPU over the run, in cores of the {psutil.cpu_count()}: workers {run.worker_cores:.2f}, "
        f"nginx {run.nginx_cores:.2f}, other processes {run.others_cores:.2f}; "
        f"taken by the hypervisor (steal) {run.steal_cores:.2f}"
    )
    if run.steal_cores > STEAL_NOTICE_CORES:
        print(
            "  (the hypervisor kept this virtual machine's CPUs from it that long: lag and CPU per request "
            "include its interruptions, cold caches after them; weigh this run accordingly)"
        )


def ratio(value: float, reference: float) -> float:
    return value / reference if reference else float("nan")


def print_scaling(runs: list[Run], counts: list[int]) -> dict[str, Any]:
    """Each N against the N=1 run of the same round, then the median over rounds; the medians by N."""
    scaling: dict[str, Any] = {}
    print("\nscaling against N=1 of the same round (rate: 1.00 = N times N=1's; cost: 1.00 = linear):")
    for n in counts[1:]:
        rate_ratios, cost_ratios = [], []
        held = 0
        for one, many in zip((r for r in runs if r.n == 1), (r for r in runs if r.n == n), strict=True):
            rate_ratios.append(ratio(many.sent_rate, n * one.sent_rate))
            cost_ratios.append(ratio(many.busy_us_per_request, one.busy_us_per_request))
            held += many.holds and one.holds
            print(
                f"  round {one.round_i + 1}, N={n}: sent {many.sent_rate:,.0f}/s against {n} x {one.sent_rate:,.0f}/s"
                f" = {rate_ratios[-1]:.3f}; busy {many.busy_us_per_request:.1f} against "
                f"{one.busy_us_per_request:.1f} us/req = {cost_ratios[-1]:.2f}x; every worker held: "
                f"{'yes' if many.holds and one.holds else 'no'}; steal {one.steal_cores:.2f} and "
                f"{many.steal_cores:.2f} cores"
            )
        print(
            f"  N={n}, median of {len(rate_ratios)} round(s): rate {statistics.median(rate_ratios):.3f} of linear, "
            f"CPU per request {statistics.median(cost_ratios):.2f}x N=1's "
            f"({statistics.median(cost_ratios) - 1:+.0%} per request)"
        )
        scaling[str(n)] = {
            "rate_of_linear": statistics.median(rate_ratios),
            "cost_per_request_of_one": statistics.median(cost_ratios),
            "rounds_held": held,
            "rounds": len(rate_ratios),
        }
    nginx = [run.nginx_cores for run in runs]
    print(
        f"  nginx took {min(nginx):.2f}-{max(nginx):.2f} cores of the {psutil.cpu_count()} "
        f"({min(nginx) / (psutil.cpu_count() or 1):.0%}-{max(nginx) / (psutil.cpu_count() or 1):.0%} of the machine)"
    )
    return scaling


def print_limits(counts: list[int], cpus: list[int | None], target_cpus: list[int], unpinned: bool) -> None:
    most = max(counts)
    if None in cpus:
        where = "the workers are not pinned (no taskset), and nginx shares the CPUs with them"
    elif unpinned:
        where = "nginx may run on any CPU, so every worker's core may also serve requests"
    else:

        def sharing(n: int) -> str:
            shared = [str(cpu) for cpu in cpus[:n] if cpu in target_cpus]
            return f"N={n}: on CPU {', '.join(shared)}" if shared else f"N={n}: none"

        where = (
            f"nginx is on CPU {','.join(map(str, target_cpus))}; the workers that share its core, "
            f"{sharing(1)}, {sharing(most)}"
        )
    print(
        "\nwhat this cannot show:\n"
        f"  - a target on cores of its own: {where}. With N={most} the target's CPU comes out of the workers' "
        "cores, with N=1 it can have an idle one; a clean N-core test needs the target elsewhere.\n"
        f"  - N > {len(os.sched_getaffinity(0))} is not measurable here (one worker per core, "
        f"{len(os.sched_getaffinity(0))} CPUs): contention that grows with N (memory bandwidth, the kernel's "
        f"loopback, the coordinator's fan-in: see bench_aggregation.py) does not show at N={most}.\n"
        "  - at a rate every worker holds, the rate ratio is 1.00 by construction (the open loop sends what it "
        "plans); it shows the schedule was kept, not spare capacity. The CPU per request is the figure that "
        "speaks to linearity: a core's capacity goes with its inverse.\n"
        "  - the workers run the engine alone (bench_engine's child), without coordinator or Redis; and the "
        "machine is a shared virtual machine: 'other processes' and 'steal' above say how quiet it was."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=10_000, help="each worker's open-loop rate (rps)")
    parser.add_argument("--seconds", type=float, default=5.0, help="each run's length")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of every N, alternating")
    parser.add_argument("--workers", default="1,2", help="the numbers of workers to compare (1 is the reference)")
    parser.add_argument("--target-cpus", default="all", help="nginx's CPUs: all (unpinned) or a list, e.g. 0")
    parser.add_argument("--arrival", choices=["constant", "poisson"], default="constant", help="open loop arrivals")
    add_save_option(parser)
    # A worker process (bench_engine's child arguments, and the instant its engine starts at).
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--interval", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.save:
        note_start()
    if args.child:
        args.lag_trace = False
        worker_child(args)
        return

    allowed = sorted(os.sched_getaffinity(0))
    counts = sorted({int(part) for part in args.workers.split(",")} | {1})
    if max(counts) > len(allowed):
        parser.error(f"--workers {max(counts)}: one worker per CPU, and this machine has {len(allowed)}")
    if args.rounds < 1 or args.seconds <= 0 or args.rate <= 0:
        parser.error("--rounds, --seconds and --rate must be positive")
    # Worker i on the i-th CPU from the end: one worker is on CPU 1, as bench_engine's generator.
    can_pin = bool(pinned(allowed[-1]))
    cpus: list[int | None] = [cpu if can_pin else None for cpu in reversed(allowed)]
    target_cpus = allowed if args.target_cpus == "all" else [int(part) for part in args.target_cpus.split(",")]
    if not set(target_cpus) <= set(allowed):
        parser.error(f"--target-cpus {args.target_cpus}: the CPUs here are {','.join(map(str, allowed))}")

    workdir = Path(tempfile.mkdtemp(prefix="meshload-bench-scale-"))
    nginx = Nginx(workdir)
    try:
        # bench_engine's Nginx pins it to its server CPU; this benchmark places it itself. Master first:
        # a worker it forks afterwards inherits its CPUs, one forked before is among its children.
        master = psutil.Process(nginx.process.pid)
        for process in [master, *master.children(recursive=True)]:
            process.cpu_affinity(target_cpus)
        load = os.getloadavg()
        print(
            f"nginx {nginx.url} (one worker process) on CPU(s) {','.join(map(str, target_cpus))}"
            f"{' (unpinned: it shares the cores with the workers)' if args.target_cpus == 'all' else ''}; "
            f"{len(allowed)} CPUs, load average {load[0]:.2f}\n"
            f"meshload open loop, {args.arrival} arrivals, {args.rate:,.0f} rps per worker, "
            f"{args.seconds:g} s per run, "
            f"N = {', '.join(map(str, counts))}, {args.rounds} round(s); workers pinned to CPUs "
            f"{', '.join('any' if cpu is None else str(cpu) for cpu in cpus[: max(counts)])} (in that order)\n"
            f"a worker holds when its lag p99 < {LAG_P99_LIMIT_MS:g} ms, its rate within {RATE_TOLERANCE:.0%} "
            "and no errors"
        )
        runs = measure(nginx.url, counts, cpus, args, master, workdir)
        scaling = print_scaling(runs, counts)
        print_limits(counts, cpus, target_cpus, args.target_cpus == "all")
        if args.save:
            steal = [run.steal_cores for run in runs]
            save_results(
                "scale",
                {
                    "rate_per_worker": args.rate,
                    "seconds": args.seconds,
                    "by_workers": scaling,
                    "cpus": len(allowed),
                    "steal_cores": [min(steal), max(steal)],
                },
            )
    finally:
        nginx.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
