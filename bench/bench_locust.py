"""Benchmark: what the meshload plugin costs Locust, and what running a locustfile's users in
meshload's own workers costs against plain Locust, in CPU per request, on one local nginx.

Not a test: it prints a table. nginx and Locust are set up as in `bench_engine.py` (its helpers: nginx
pinned to CPU 0, the generator to CPU 1, CPU from psutil with children). The locustfile is the one of
`bench_engine.py` (`FastHttpUser`, no wait); 32 users, headless, four ways on the same nginx:

- plain Locust, one process;
- with `import meshload.locust` (every request recorded per name into HDR interval records, merged,
  reports written at the end);
- with the plugin and `open_loop` at 80% of plain Locust's measured rate (pacing on top);
- `meshload run --locustfile` with `--concurrency 32` and one worker: the same users in meshload's
  Locust engine (a gevent child of the worker), every process of the run counted (the coordinator,
  its private redis-server, the worker and the engine's process); beside it, the engine's process
  alone, as its interval records report its CPU.

Then the plugin's request listener alone, in this process: the time per Locust request event it
records (200,000 events in a greenlet, folds and all), the part of the cost that is per request.

CPU per request is the marginal cost: each variant runs for `--seconds` and for twice that, and the
difference in CPU is divided by the difference in requests, so the fixed costs of one run (imports,
start-up, the reports at the end) cancel out. Variants alternate for `--rounds` rounds; the median
counts (the machine is shared). The target: the plugin adds under 10% to Locust's CPU per request.

    python bench/bench_locust.py [--seconds 5] [--rounds 5] [--skip-meshload-run]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

from bench_engine import CONNECTIONS, LOCUSTFILE, Nginx, run_locust_headless, run_measured
from bench_results import add_save_option, note_start, save_results

PLUGIN = "import meshload.locust\n"
OPEN_LOOP = "wait_time = meshload.locust.open_loop({rate})"
#: The open-loop variant plans this fraction of plain Locust's closed-loop rate (it must keep up).
OPEN_LOOP_FRACTION = 0.8
#: The open-loop rate when plain Locust gave no figure to take it from.
FALLBACK_RATE = 1_000


@dataclass
class Run:
    requests: int
    cpu_s: float


def locustfile_text(plugin: bool, open_rate: float = 0.0) -> str:
    text = textwrap.dedent(LOCUSTFILE)
    if open_rate:
        text = text.replace(
            "class Fast(FastHttpUser):", f"class Fast(FastHttpUser):\n    {OPEN_LOOP.format(rate=open_rate)}"
        )
    return (PLUGIN + text) if plugin else text


def locust_run(locustfile: Path, url: str, seconds: float, workdir: Path) -> Run:
    requests, measured = run_locust_headless(locustfile, url, seconds, workdir)
    return Run(requests, measured.cpu_s)


def marginal_us_per_request(url: str, locustfile: Path, seconds: float, workdir: Path) -> tuple[float, float]:
    """(CPU µs per request, requests/s) from a run of `seconds` and one of twice as long."""
    short = locust_run(locustfile, url, seconds, workdir)
    long = locust_run(locustfile, url, 2 * seconds, workdir)
    extra_requests = long.requests - short.requests
    if extra_requests <= 0 or long.cpu_s <= short.cpu_s:  # a stalled machine: no figure rather than a wrong one
        return math.nan, math.nan
    return (long.cpu_s - short.cpu_s) * 1e6 / extra_requests, extra_requests / seconds


def run_meshload_locustfile(locustfile: Path, url: str, seconds: float, workdir: Path) -> tuple[int, float, float]:
    """One `meshload run --locustfile` (32 users, closed loop, one local worker, pinned): the requests
    it recorded, the CPU seconds of all its processes, and the engine process's own (its records')."""
    out = workdir / f"meshload-{locustfile.stem}-{seconds:g}"
    cpu_s = run_measured(
        [
            sys.executable,
            "-m",
            "meshload",
            "run",
            url,
            "--locustfile",
            str(locustfile),
            "--concurrency",
            str(CONNECTIONS),
            "-d",
            f"{seconds:g}s",
            "--workers",
            "1",
            "--placement",
            "local",
            "--timeout",
            "1s",
            "--no-live",
            "--no-history",
            "-o",
            str(out),
        ]
    ).cpu_s
    block = json.loads((out / "smp.json").read_text())["meshload"]
    requests = block["requests"] + block["warmup"]["completed"] + sum(block["errors"].values())
    return requests, cpu_s, sum(worker["cpu_seconds"] for worker in block["workers"])


def marginal_meshload_us_per_request(url: str, locustfile: Path, seconds: float, workdir: Path) -> tuple[float, ...]:
    """(CPU µs per request of every process, requests/s, the engine process's µs per request), marginal
    between a run of `seconds` and one of twice as long, as for Locust."""
    short = run_meshload_locustfile(locustfile, url, seconds, workdir)
    long = run_meshload_locustfile(locustfile, url, 2 * seconds, workdir)
    extra_requests = long[0] - short[0]
    if extra_requests <= 0 or long[1] <= short[1]:
        return math.nan, math.nan, math.nan
    return (
        (long[1] - short[1]) * 1e6 / extra_requests,
        extra_requests / seconds,
        (long[2] - short[2]) * 1e6 / extra_requests,
    )


def listener_us_per_event(events: int = 200_000) -> float:
    """The plugin's request listener alone: µs per event, as Locust fires it (nine keyword arguments)."""
    from types import SimpleNamespace

    import gevent

    from meshload.worker.locust_events import LocustRequestRecorder
    from meshload.worker.named_recorder import NamedIntervalRecorder

    listener = LocustRequestRecorder(NamedIntervalRecorder(worker_id="bench")).on_request
    response = SimpleNamespace(status_code=200)

    def fire() -> float:
        started = time.perf_counter()
        for _ in range(events):
            listener(
                request_type="GET",
                name="/",
                response_time=1.234,
                response_length=2,
                response=response,
                context={},
                exception=None,
                start_time=0.0,
                url="/",
            )
        return (time.perf_counter() - started) * 1e6 / events

    return gevent.spawn(fire).get()


def main() -> None:
    parser = argparse.ArgumentParser(description="CPU per request of Locust with and without the meshload plugin")
    parser.add_argument("--seconds", type=float, default=5.0, help="the short run; the long one is twice this")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-meshload-run", action="store_true", help="only Locust, with and without the plugin")
    add_save_option(parser)
    args = parser.parse_args()
    if args.save:
        note_start()
    workdir = Path(tempfile.mkdtemp(prefix="meshload-bench-locust-"))
    nginx = Nginx(workdir)
    try:
        files = {"plain": workdir / "plain.py", "plugin": workdir / "plugin.py"}
        files["plain"].write_text(locustfile_text(False))
        files["plugin"].write_text(locustfile_text(True))
        figures: dict[str, list[tuple[float, float]]] = {name: [] for name in ("plain", "plugin", "open loop")}
        for _ in range(args.rounds):
            for name in ("plain", "plugin"):
                figures[name].append(marginal_us_per_request(nginx.url, files[name], args.seconds, workdir))
            plain_rates = [rate for _, rate in figures["plain"] if not math.isnan(rate)]
            open_rate = round(OPEN_LOOP_FRACTION * statistics.median(plain_rates)) if plain_rates else FALLBACK_RATE
            files["open loop"] = workdir / "open_loop.py"
            files["open loop"].write_text(locustfile_text(True, open_rate))
            figures["open loop"].append(marginal_us_per_request(nginx.url, files["open loop"], args.seconds, workdir))
            if not args.skip_meshload_run:
                us, rate, engine_us = marginal_meshload_us_per_request(nginx.url, files["plain"], args.seconds, workdir)
                figures.setdefault("meshload run --locustfile", []).append((us, rate))
                figures.setdefault("  its engine process alone", []).append((engine_us, rate))
        plain_us = statistics.median(us for us, _ in figures["plain"])
        print(f"nginx {nginx.url}; Locust FastHttpUser x{CONNECTIONS}, {args.seconds:g} s and {2 * args.seconds:g} s")
        print(f"{'variant':<32}{'requests/s':>12}{'CPU us/req':>12}{'vs plain':>10}  rounds (us/req)")
        for name, rounds in figures.items():
            us = statistics.median(value for value, _ in rounds)
            rate = statistics.median(value for _, value in rounds)
            label = f"{name} ({open_rate:,} rps planned)" if name == "open loop" else name
            every = ", ".join(f"{value:.1f}" for value, _ in rounds)
            print(f"{label:<32}{rate:>12,.0f}{us:>12.1f}{us / plain_us - 1:>+10.1%}  {every}")
        if "meshload run --locustfile" in figures:
            run_us = statistics.median(us for us, _ in figures["meshload run --locustfile"])
            engine_us = statistics.median(us for us, _ in figures["  its engine process alone"])
            print(
                f"meshload run --locustfile / plain Locust, CPU per request: {run_us / plain_us:.2f}x for all its "
                f"processes, {engine_us / plain_us:.2f}x for the engine's process alone"
            )
        listener_us = listener_us_per_event()
        share = listener_us / plain_us
        print(f"the plugin's request listener alone: {listener_us:.2f} us per event ({share:.1%} of plain Locust's)")
        if args.save:
            save_results(
                "locust",
                {
                    "users": CONNECTIONS,
                    "seconds": args.seconds,
                    "us_per_request": {
                        name.strip(): statistics.median(us for us, _ in rounds) for name, rounds in figures.items()
                    },
                    # Each round's figures, in the order run: a round runs its variants one after
                    # another, so plugin over plain within a round is a paired comparison.
                    "rounds_us_per_request": {
                        name.strip(): [us for us, _ in rounds] for name, rounds in figures.items()
                    },
                    "open_loop_rate": open_rate,
                    "listener_us_per_event": listener_us,
                },
            )
    finally:
        nginx.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
