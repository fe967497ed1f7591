"""Benchmark of meshload's request engine against wrk, hey and Locust on one local nginx.

Not a test: it prints a table. Every generator runs for the same short time against the same nginx
(one worker process, a static 200 answer, on a free loopback port), one after another:

- meshload's uvloop engine, closed loop, 32 connections, one process, full recording on;
- ``wrk -t1 -c32``, ``hey -c 32``, and Locust ``FastHttpUser`` (one process, 32 users, headless).

nginx is pinned to CPU 0 and every generator to CPU 1 (``taskset``), so all tools see the same
conditions whatever else the machine runs.

For each: requests/s and CPU microseconds per request (user+system CPU of the generator's process,
read from psutil, divided by completed requests), and the ratio to wrk's. Then the open loop: meshload
at 50,000 rps on one worker (achieved rate, schedule-lag p99, CPU with and without the polling for
near instants, memory and garbage collections), and a search for the highest rate one worker holds
with schedule-lag p99 under 1 ms and the achieved rate within 1%.

    python bench/bench_engine.py [--seconds 5] [--skip-search] [--only closed|open|instructions|cuts]
                                 [--arrival poisson] [--cuts-rate 30000] [--cuts-rounds 2]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench_results import add_save_option, note_start, save_results

CONNECTIONS = 32
OPEN_LOOP_RATE = 50_000
#: The open loop's rate when its instructions are counted: low enough for valgrind's slowdown to keep
#: every send on its planned instant, so each request goes the timer's way (a wake-up per send).
COUNTED_OPEN_LOOP_RATE = 400
LAG_P99_LIMIT_MS = 1.0
RATE_TOLERANCE = 0.01
SERVER_CPU, GENERATOR_CPU = 0, 1

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 60s;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "ok"; }}
    }}
}}
"""

LOCUSTFILE = """
from locust import task
from locust.contrib.fasthttp import FastHttpUser

class Fast(FastHttpUser):
    @task
    def get(self):
        self.client.get("/")
"""


@dataclass
class Figures:
    tool: str
    requests: int
    seconds: float
    cpu_s: float
    #: The part of `cpu_s` spent in the kernel (system calls, the TCP stack, page faults).
    system_s: float
    note: str = ""

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_s * 1e6 / self.requests if self.requests else float("nan")

    @property
    def system_us_per_request(self) -> float:
        return self.system_s * 1e6 / self.requests if self.requests else float("nan")


def pinned(cpu: int) -> list[str]:
    """`taskset` prefix keeping nginx and the generator on their own CPUs (same for every tool)."""
    if shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        return []
    return ["taskset", "-c", str(cpu)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Nginx:
    """nginx pinned to the server CPU, from `conf_template` (with {dir} and {port} to fill)."""

    def __init__(self, workdir: Path, conf_template: str = NGINX_CONF) -> None:
        self.port = free_port()
        conf = workdir / "nginx.conf"
        conf.write_text(conf_template.format(dir=workdir, port=self.port))
        self.process = subprocess.Popen([*pinned(SERVER_CPU), "nginx", "-c", str(conf), "-p", str(workdir)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@dataclass
class Measured:
    """What `run_measured` saw of a command: its output and the CPU of it and its children."""

    out: str
    cpu_s: float  # user + system
    system_s: float


def run_measured(command: list[str], **popen: Any) -> Measured:
    """Run `command`; its stdout and the CPU seconds of it and its children (polled: the last
    reading before it exits)."""
    process = subprocess.Popen(
        [*pinned(GENERATOR_CPU), *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen
    )
    watched = psutil.Process(process.pid)
    user_s = system_s = 0.0
    while process.poll() is None:
        try:
            times = watched.cpu_times()
            user_s, system_s = times.user + times.children_user, times.system + times.children_system
            for child in watched.children(recursive=True):
                child_times = child.cpu_times()
                user_s += child_times.user
                system_s += child_times.system
        except psutil.Error:
            pass
        time.sleep(0.05)
    out, err = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({process.returncode}): {err.strip()[-500:]}")
    return Measured(out + err, user_s + system_s, system_s)


def bench_wrk(url: str, seconds: float) -> Figures:
    measured = run_measured(["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds:g}s", url])
    match = re.search(r"(\d+) requests in ([\d.]+)(m?s)", measured.out)
    assert match, measured.out
    elapsed = float(match.group(2)) / (1000 if match.group(3) == "ms" else 1)
    return Figures("wrk -t1 -c32", int(match.group(1)), elapsed, measured.cpu_s, measured.system_s)


def bench_hey(url: str, seconds: float) -> Figures:
    measured = run_measured(["hey", "-c", str(CONNECTIONS), "-z", f"{seconds:g}s", url])
    responses = sum(int(n) for n in re.findall(r"\[\d{3}\]\s+(\d+) responses", measured.out))
    total = re.search(r"Total:\s+([\d.]+) secs", measured.out)
    assert total, measured.out
    return Figures("hey -c 32", responses, float(total.group(1)), measured.cpu_s, measured.system_s)


def run_locust_headless(locustfile: Path, url: str, seconds: float, workdir: Path) -> tuple[int, Measured]:
    """One headless Locust run (32 users, pinned): the requests it counted and its CPU."""
    prefix = workdir / f"locust-{locustfile.stem}-{seconds:g}"
    measured = run_measured(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(locustfile),
            "--headless",
            "-u",
            str(CONNECTIONS),
            "-r",
            str(CONNECTIONS),
            "-t",
            f"{seconds:g}s",
            "--host",
            url.rstrip("/"),
            "--json-file",
            str(prefix),
            "--only-summary",
            "--stop-timeout",
            "1",
            "--loglevel",
            "WARNING",
        ]
    )
    # Locust's final statistics (its --csv files are rewritten once a second and may miss the end).
    entries = json.loads(Path(f"{prefix}.json").read_text())
    return sum(entry["num_requests"] for entry in entries), measured


def bench_locust(url: str, seconds: float, workdir: Path) -> Figures:
    locustfile = workdir / "locustfile.py"
    locustfile.write_text(textwrap.dedent(LOCUSTFILE))
    requests, measured = run_locust_headless(locustfile, url, seconds, workdir)
    # CPU covers interpreter start-up too (about as much as meshload's own start-up, excluded below).
    return Figures(
        "locust FastHttpUser x32",
        requests,
        seconds,
        measured.cpu_s,
        measured.system_s,
        "process CPU incl. start-up",
    )


def meshload_child(args: argparse.Namespace) -> None:
    """Runs in a child process: one engine run, its figures as JSON on stdout."""
    from meshload.results.histogram import LatencyHistogram
    from meshload.scenarios.plan import Plan
    from meshload.worker.engines import pick_engine

    # The engine runs in this process (a worker runs a high-rate one in a child of its own, the same
    # code): the CPU, memory and trace figures below are this process's.
    os.environ.setdefault("MESHLOAD_ENGINE_PROCESS", "never")
    trace = trace_sends() if args.lag_trace else None
    load: dict[str, Any] = {"kind": "closed", "concurrency": CONNECTIONS}
    if args.rate:
        load = {"kind": "open", "rate": args.rate, "arrival": args.arrival}
    plan = Plan(targets=[{"url": args.url}], load=load, duration_s=args.seconds)
    pick_engine(plan)  # imports the engine's modules: interpreter start-up, not the run's CPU
    cpu_before = psutil.Process().cpu_times()
    blocks_before = sys.getallocatedblocks()
    collections_before = [generation["collections"] for generation in gc.get_stats()]
    records, outcomes = child_run(plan, args.interval, getattr(args, "publish", None), trace)
    collections = [
        generation["collections"] - before
        for generation, before in zip(gc.get_stats(), collections_before, strict=True)
    ]
    blocks_after = sys.getallocatedblocks()
    cpu_after = psutil.Process().cpu_times()
    lag = LatencyHistogram()
    corrected = LatencyHistogram()
    for record in records:
        lag.decode_and_add(record.schedule_lag)
        corrected.decode_and_add(record.latency_corrected)
    full = [r for r in records if not r.final]
    sent_full = sum(r.sent for r in full)
    seconds_full = sum(r.duration_s for r in full)
    around_cuts = lag_around_cuts(trace, args.interval) if trace is not None else {}
    print(
        json.dumps(
            {
                **around_cuts,
                "completed": outcomes[0].completed,
                "errors": outcomes[0].errors,
                "engine_cpu_s": outcomes[0].cpu_seconds,
                "spin_s": outcomes[0].spin_seconds,
                # Objects still allocated after the run that were not before (its records are kept:
                # a few per interval), and the garbage collector's passes per generation during it.
                "blocks_kept": blocks_after - blocks_before,
                "gc_collections": collections,
                "run_cpu_s": (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system),
                "run_system_s": cpu_after.system - cpu_before.system,
                "fold_cpu_s": (cpu_after.children_user + cpu_after.children_system)
                - (cpu_before.children_user + cpu_before.children_system),
                "elapsed_s": outcomes[0].elapsed_s,
                "lag_p99_ms": lag.value_at_percentile(99) / 1000,
                "lag_p999_ms": lag.value_at_percentile(99.9) / 1000,
                "lag_max_ms": lag.value_at_percentile(100) / 1000,
                "corrected_p99_ms": corrected.value_at_percentile(99) / 1000,
                "sent_rate_full_intervals": sent_full / seconds_full if seconds_full else 0.0,
                "late": sum(r.late for r in records),
            }
        )
    )


def child_run(plan: Any, interval_s: float, publish: str | None, trace: dict[str, Any] | None) -> tuple[list, list]:
    """One worker's run, as `collect_records`; with `publish` (a Redis URL) its records go to the
    worker's record publisher, as in a real worker (a thread of the engine's process XADDs them), and
    the instants the records were handed on are traced."""
    from meshload.worker.standalone import collect_records

    if not publish and trace is None:
        return collect_records(plan, workers=1, interval_s=interval_s)
    from meshload.pipeline import wire
    from meshload.pipeline.publisher import RecordPublisher
    from meshload.scenarios.schedule import split_plan
    from meshload.worker.standalone import START_LEAD_S, prepare_engine, run_share_blocking, worker_id_of

    records: list[Any] = []
    publisher = RecordPublisher(publish, wire.RunKeys("bench")).start() if publish else None
    handed_ns = trace.setdefault("handed_ns", []) if trace is not None else []

    def sink(record: Any) -> None:
        handed_ns.append(time.monotonic_ns())
        records.append(record)
        if publisher is not None:
            publisher.submit(record)

    share = split_plan(plan, 1)[0]
    engine = prepare_engine(share)
    start_ns = time.monotonic_ns() + round(START_LEAD_S * 1e9)
    outcome = run_share_blocking(
        share, engine=engine, start_ns=start_ns, sink=sink, worker_id=worker_id_of(0), interval_s=interval_s
    )
    if publisher is not None and not publisher.close(10.0):
        raise RuntimeError("the record publisher did not deliver every record to Redis")
    return records, [outcome]


def meshload_command(
    url: str, seconds: float, rate: float = 0, interval_s: float = 1.0, arrival: str = "constant"
) -> list[str]:
    return [
        sys.executable,
        __file__,
        "--child",
        "--url",
        url,
        "--seconds",
        str(seconds),
        "--rate",
        str(rate),
        "--interval",
        str(interval_s),
        "--arrival",
        arrival,
    ]


#: Sends planned this soon after an interval cut count as "around the cut".
CUT_WINDOW_NS = 5_000_000


def trace_sends() -> dict[str, Any]:
    """Every open-loop response's planned and actual send instants, and the run's start (for the lag
    around cuts).

    The response callback (compiled) gets one Python call in front of it: the same in any version
    compared. It keeps what the callback records, a response to a request in flight with a final
    (not 1xx) status, read before the callback reuses the connection."""
    from array import array

    from meshload.worker.engines.http1_open_loop import OpenLoopConnection
    from meshload.worker.engines.runner import EngineRunner

    trace: dict[str, Any] = {"planned": array("q"), "sent": array("q"), "start_ns": 0}
    message_complete = OpenLoopConnection.on_message_complete
    runner_init = EngineRunner.__init__

    def traced(self: OpenLoopConnection) -> None:
        if self.busy and self._parser.get_status_code() >= 200:
            trace["planned"].append(self.planned_ns)
            trace["sent"].append(self.sent_ns)
        message_complete(self)

    def init(self: EngineRunner, *args: Any, **kwargs: Any) -> None:
        runner_init(self, *args, **kwargs)
        trace["start_ns"] = self.start_ns

    # Parsers look their callbacks up when made: connections made after this call the traced one.
    OpenLoopConnection.on_message_complete = traced  # type: ignore[assignment]
    EngineRunner.__init__ = init  # type: ignore[method-assign]
    time_cut_steps(trace)
    return trace


def time_cut_steps(trace: dict[str, Any]) -> None:
    """The loop's CPU time (this thread's, so a neighbour's burst does not count) in each uninterrupted
    piece of an interval cut, and in each fold the hot path does when the response buffer is full."""
    from meshload.worker import recorder as recorder_module
    from meshload.worker.engines import http1_runner, runner

    trace["cut_steps_ns"], trace["cuts_ns"], trace["folds_ns"] = [], [], []
    # Each piece's CPU by kind: "function" or "steps#n" (the n-th step of a stepped function).
    trace["pieces"] = {}
    clock = time.thread_time_ns

    def keep(into: str, kind: str, took_ns: int) -> None:
        trace[into].append(took_ns)
        trace["pieces"].setdefault(kind, []).append(took_ns)

    def timed(function: Any, into: str) -> Any:
        kind = function.__qualname__

        def call(*args: Any, **kwargs: Any) -> Any:
            started = clock()
            try:
                return function(*args, **kwargs)
            finally:
                keep(into, kind, clock() - started)

        return call

    def timed_steps(make_steps: Any) -> Any:
        kind = make_steps.__qualname__

        def steps(*args: Any) -> Any:
            iterator = iter(make_steps(*args))
            step = 0
            while True:
                started = clock()
                try:
                    next(iterator)
                except StopIteration:
                    return
                finally:
                    keep("cut_steps_ns", f"{kind}#{step}", clock() - started)
                    step += 1
                yield

        return steps

    fold = recorder_module.IntervalRecorder.fold
    recorder_module.IntervalRecorder.fold = timed(fold, "folds_ns")  # type: ignore[method-assign]
    fold_step = getattr(recorder_module.IntervalRecorder, "_fold_step", None)
    if fold_step is not None:  # a version that folds a full buffer in steps: each step is a piece
        recorder_module.IntervalRecorder._fold_step = timed(fold_step, "folds_ns")  # type: ignore[method-assign]
    pending = getattr(recorder_module, "PendingRecord", None)
    if pending is None:  # a version that cuts in one piece
        emit = runner.EngineRunner.__dict__["_emit"]
        setattr(runner.EngineRunner, "_emit", timed(emit, "cuts_ns"))  # noqa: B010 - absent from this version
        return
    recorder_module.IntervalRecorder.detach = timed(recorder_module.IntervalRecorder.detach, "cut_steps_ns")  # type: ignore[method-assign]
    time_fold_process_pieces(timed)
    pending.steps = timed_steps(pending.steps)
    # Handing the complete records on (to the sink: decoding them, where they come from the fold process).
    runner.EngineRunner._hand_on_ready = timed(runner.EngineRunner._hand_on_ready, "cut_steps_ns")  # type: ignore[method-assign]
    for cls in (runner.EngineRunner, http1_runner.Http1Runner):
        cls._before_cut_steps = timed_steps(cls._before_cut_steps)  # type: ignore[method-assign]


def time_fold_process_pieces(timed: Any) -> None:
    """With the fold process, a cut's pieces on the loop: the detach, the write of its sockets' events,
    and its record coming back (read, then handed on: `EngineRunner._hand_on_ready`)."""
    try:
        from meshload.worker.fold_channel import FoldChannel
        from meshload.worker.offloaded_recorder import OffloadedRecorder
    except ImportError:  # a version without the fold process
        return
    OffloadedRecorder.detach = timed(OffloadedRecorder.detach, "cut_steps_ns")  # type: ignore[method-assign]
    send_sockets = getattr(OffloadedRecorder, "_send_socket_frames", None)
    if send_sockets is not None:  # a version whose fold process counts the bytes received
        OffloadedRecorder._send_socket_frames = timed(send_sockets, "cut_steps_ns")  # type: ignore[method-assign]
    FoldChannel._data_received = timed(FoldChannel._data_received, "cut_steps_ns")  # type: ignore[method-assign]


def piece_order(kind: str) -> tuple[str, int]:
    """ "PendingRecord.steps#10" after "PendingRecord.steps#9"."""
    name, _, step = kind.partition("#")
    return name, int(step or 0)


#: The file an engine run in its own process writes its traced figures to (`trace_engine_child`).
ENGINE_TRACE_ENV = "MESHLOAD_BENCH_ENGINE_TRACE"
#: Put on the `PYTHONPATH` of a run whose engine is in a child process of the worker: Python imports it
#: at start-up in every process, and in the engine's (`asyncio_main`) it installs the same trace.
SITECUSTOMIZE = """import os, sys
if "meshload.worker.asyncio_main" in getattr(sys, "orig_argv", ()) and os.environ.get({env!r}):
    sys.path.insert(0, {bench_dir!r})
    import bench_engine
    bench_engine.trace_engine_child(os.environ[{env!r}])
"""


def trace_engine_child(out_path: str) -> None:
    """In an engine's own process: trace its sends and cuts as `trace_sends` does, and the instants its
    records were handed on (written to the worker); the figures go to `out_path` when it exits."""
    import atexit

    from meshload.worker import engine_process

    trace = trace_sends()
    handed_ns = trace.setdefault("handed_ns", [])
    send = engine_process._FrameWriter.send

    def traced(self: Any, kind: str, payload: object) -> None:
        if kind == "record":
            handed_ns.append(time.monotonic_ns())
        send(self, kind, payload)

    engine_process._FrameWriter.send = traced  # type: ignore[method-assign]
    atexit.register(lambda: Path(out_path).write_text(json.dumps(lag_around_cuts(trace, 1.0))))


def lag_around_cuts(trace: dict[str, Any], interval_s: float) -> dict[str, Any]:
    """Schedule lag of the sends planned within `CUT_WINDOW_NS` after an interval cut, and of the rest."""
    import numpy as np

    if not trace["planned"]:
        # Figures of no send would print as NaN, not fail: the hook has left the response path.
        raise RuntimeError("the lag trace saw no response: trace_sends no longer hooks the response callback")
    planned = np.frombuffer(trace["planned"], dtype=np.int64)
    lag_us = (np.frombuffer(trace["sent"], dtype=np.int64) - planned) / 1000
    # The first interval is left out of every group: it follows the start (connections opening, the
    # fold process starting up), not a cut.
    after_first = planned - trace["start_ns"] >= round(interval_s * 1e9)
    planned, lag_us = planned[after_first], lag_us[after_first]
    since_cut_ns = (planned - trace["start_ns"]) % round(interval_s * 1e9)
    near = since_cut_ns < CUT_WINDOW_NS
    figures: dict[str, Any] = {"sends_near_cuts": int(near.sum())}
    steps_us = np.asarray(trace["cut_steps_ns"] or trace["cuts_ns"] or [0]) / 1000
    figures["cut_longest_piece_us"] = float(steps_us.max())
    figures["cut_pieces"] = len(steps_us)
    figures["cuts_total_us"] = float(steps_us.sum())
    folds_us = np.asarray(trace["folds_ns"] or [0]) / 1000
    figures["hot_path_folds"] = len(trace["folds_ns"])
    figures["hot_path_fold_longest_us"] = float(folds_us.max())
    figures["pieces"] = {
        kind: [len(took), float(np.median(took)) / 1000, float(np.max(took)) / 1000]
        for kind, took in sorted(trace["pieces"].items(), key=lambda item: piece_order(item[0]))
    }
    # The engine also takes its next chunk of planned instants at these marks (cuts among them): the
    # sends after the marks that are not cuts show what taking a chunk costs, apart from the cut.
    try:
        from meshload.worker.engines.planned_instants import HORIZON_START_S, PLAN_CHUNK_S
    except ImportError:  # a version whose chunks start with the run
        from meshload.worker.engines.planned_instants import PLAN_CHUNK_S

        HORIZON_START_S = 0.0
    chunk_ns = round(PLAN_CHUNK_S * 1e9)
    since_chunk_ns = (planned - trace["start_ns"] - round(HORIZON_START_S * 1e9)) % chunk_ns
    near_chunk = (since_chunk_ns < CUT_WINDOW_NS) & ~near
    # The sends planned within the window after a record was handed on (to the publisher, in a real
    # worker): where its delivery, on a thread of the same process, would show.
    handed = np.sort(np.asarray(trace.get("handed_ns", []), dtype=np.int64))
    near_handed = np.zeros(len(planned), dtype=bool)
    if handed.size:
        previous = np.searchsorted(handed, planned, side="right") - 1
        since_handed_ns = planned - handed[np.maximum(previous, 0)]
        near_handed = (previous >= 0) & (since_handed_ns < CUT_WINDOW_NS) & ~near & ~near_chunk
    groups = (
        ("near_cuts", lag_us[near]),
        ("near_chunks", lag_us[near_chunk]),
        ("near_handed", lag_us[near_handed]),
        ("elsewhere", lag_us[~near & ~near_chunk & ~near_handed]),
    )
    for name, part in groups:
        if part.size:
            figures[f"lag_{name}_p90_us"] = float(np.percentile(part, 90))
            figures[f"lag_{name}_p99_us"] = float(np.percentile(part, 99))
            figures[f"lag_{name}_max_us"] = float(part.max())
    # Whether the cuts show in the run's own lag, the percentiles its report gives: those percentiles
    # with and without the sends after cuts, and how many of the latest sends came after a cut (were
    # the cuts free, about as many as their share of all sends).
    if lag_us.size and near.any():
        figures["near_cuts_share"] = float(near.mean())
        for label, q in (("p99", 99.0), ("p999", 99.9)):
            threshold = float(np.percentile(lag_us, q))
            figures[f"lag_run_{label}_us"] = threshold
            figures[f"lag_run_without_cuts_{label}_us"] = float(np.percentile(lag_us[~near], q))
            figures[f"near_cuts_share_of_{label}_tail"] = float(near[lag_us >= threshold].mean())
    return figures


def run_meshload(url: str, seconds: float, rate: float = 0, arrival: str = "constant") -> tuple[dict, float]:
    measured = run_measured(meshload_command(url, seconds, rate, arrival=arrival))
    return json.loads(measured.out.strip().splitlines()[-1]), measured.cpu_s


def bench_meshload_closed(url: str, seconds: float) -> Figures:
    figures, process_cpu_s = run_meshload(url, seconds)
    # The engine's own CPU (what its records report); the interpreter's start-up is excluded.
    note = f"process CPU incl. start-up: {process_cpu_s * 1e6 / max(figures['completed'], 1):.1f} us/req"
    return Figures(
        "meshload closed x32",
        figures["completed"],
        seconds,
        figures["run_cpu_s"],
        figures["run_system_s"],
        note,
    )


def median_round(rounds: list[Figures]) -> Figures:
    ordered = sorted(rounds, key=lambda r: r.cpu_us_per_request)
    median = ordered[len(ordered) // 2]
    median.note = (median.note + f"; median of {len(rounds)}").lstrip("; ")
    return median


def open_loop_holds(figures: dict, rate: float) -> bool:
    return (
        figures["lag_p99_ms"] < LAG_P99_LIMIT_MS
        and abs(figures["sent_rate_full_intervals"] - rate) <= RATE_TOLERANCE * rate
        and not figures["errors"]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="meshload engine vs wrk, hey, Locust")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--rounds", type=int, default=3, help="alternating wrk/meshload rounds (median kept)")
    parser.add_argument("--only", choices=["closed", "open", "instructions", "cuts"], default=None)
    parser.add_argument(
        "--valgrind-seconds",
        default="2,6",
        help="instructions: the short and the long run whose difference counts (seconds, under valgrind)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--interval", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--lag-trace", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cuts-rate", type=float, default=30_000, help="cuts: the open loop's rate")
    parser.add_argument("--cuts-rounds", type=int, default=2, help="cuts: rounds of each mode, alternating")
    parser.add_argument(
        "--cuts-publish", action="store_true", help="cuts: a third way, the records published to a real Redis"
    )
    parser.add_argument("--publish", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--arrival", choices=["constant", "poisson"], default="constant", help="open loop arrivals")
    add_save_option(parser)
    args = parser.parse_args()
    if args.save:
        note_start()
    if args.child:
        meshload_child(args)
        return

    workdir = Path(tempfile.mkdtemp(prefix="meshload-bench-"))
    nginx = Nginx(workdir)
    try:
        print(f"nginx {nginx.url}  ({os.cpu_count()} CPUs, {args.seconds:g} s per tool)\n")
        if args.only in (None, "closed"):
            closed = bench_closed_loop(nginx.url, args.seconds, args.rounds, workdir)
            if args.save:
                save_results("engine-closed", closed)
        if args.only in (None, "instructions"):
            short_s, long_s = (float(part) for part in args.valgrind_seconds.split(","))
            counted = bench_instructions(nginx.url, short_s, long_s, workdir)
            if args.save and counted:
                save_results("engine-instructions", counted)
        if args.only in (None, "cuts"):
            runs = bench_cuts(nginx.url, args.seconds, args.cuts_rate, args.cuts_rounds, args.cuts_publish)
            if args.save:
                save_results("engine-cuts", cuts_results(runs, args.cuts_rate, args.seconds))
        if args.only in (None, "open"):
            held = bench_open_loop(nginx.url, args.seconds, args.arrival, search=not args.skip_search)
            if args.save:
                save_results("engine-open", held)
    finally:
        nginx.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def bench_closed_loop(url: str, seconds: float, rounds: int, workdir: Path) -> dict[str, Any]:
    """CPU per request of each generator, closed loop on the same pinned nginx (wrk and meshload
    alternating for `rounds`, the median round kept)."""
    # wrk and meshload alternate for a few rounds and the median round counts: the machine
    # is shared, and a neighbour's burst should not decide the ratio.
    wrk_rounds, meshload_rounds = [], []
    for _ in range(rounds):
        wrk_rounds.append(bench_wrk(url, seconds))
        meshload_rounds.append(bench_meshload_closed(url, seconds))
    for name, measured in (("wrk", wrk_rounds), ("meshload", meshload_rounds)):
        # With the server's pace the batching changes (responses per wake-up), and the CPU per request
        # with it: each round's rate beside its cost.
        print(
            f"{name} rounds, CPU us/req (requests/s): "
            + ", ".join(f"{r.cpu_us_per_request:.1f} ({r.rate:,.0f})" for r in measured)
        )
    rows = [
        median_round(wrk_rounds),
        median_round(meshload_rounds),
        bench_hey(url, seconds),
        bench_locust(url, seconds, workdir),
    ]
    wrk_cpu = rows[0].cpu_us_per_request
    print(f"{'generator':<26}{'requests/s':>12}{'CPU us/req':>12}{'user':>8}{'system':>8}{'x wrk':>8}  note")
    for row in rows:
        system = row.system_us_per_request
        print(
            f"{row.tool:<26}{row.rate:>12,.0f}{row.cpu_us_per_request:>12.1f}"
            f"{row.cpu_us_per_request - system:>8.1f}{system:>8.1f}"
            f"{row.cpu_us_per_request / wrk_cpu:>8.2f}  {row.note}"
        )
    return {
        "connections": CONNECTIONS,
        "seconds": seconds,
        "rounds_us_per_request": {
            "wrk": [r.cpu_us_per_request for r in wrk_rounds],
            "meshload": [r.cpu_us_per_request for r in meshload_rounds],
        },
        "rounds_requests_per_s": {
            "wrk": [r.rate for r in wrk_rounds],
            "meshload": [r.rate for r in meshload_rounds],
        },
        "generators": {
            name: {
                "requests_per_s": row.rate,
                "us_per_request": row.cpu_us_per_request,
                "system_us_per_request": row.system_us_per_request,
            }
            for name, row in zip(("wrk", "meshload", "hey", "locust"), rows, strict=True)
        },
    }


def bench_open_loop(url: str, seconds: float, arrival: str, *, search: bool) -> dict[str, Any]:
    """The open loop at the target rate beside wrk's closed loop on the same nginx, then the search."""
    reference = bench_wrk(url, seconds)
    print(
        f"\nopen loop, {arrival} arrivals, one worker, {seconds:g} s "
        f"(wrk closed loop: {reference.cpu_us_per_request:.1f} us/req):"
    )
    figures, _ = run_meshload(url, seconds, OPEN_LOOP_RATE, arrival)
    busy_us = (figures["run_cpu_s"] - figures["spin_s"]) * 1e6 / max(figures["completed"], 1)
    print(
        f"  {OPEN_LOOP_RATE:,} rps planned: sent {figures['sent_rate_full_intervals']:,.0f}/s, "
        f"lag p99 {figures['lag_p99_ms']:.3f} ms, p99.9 {figures['lag_p999_ms']:.3f} ms, late {figures['late']}, "
        f"holds: {open_loop_holds(figures, OPEN_LOOP_RATE)}\n"
        f"  CPU {figures['run_cpu_s'] / figures['elapsed_s']:.0%} of a core, of it polling for near instants "
        f"{figures['spin_s'] / figures['elapsed_s']:.0%}; busy {busy_us:.1f} us/req = "
        f"{busy_us / reference.cpu_us_per_request:.2f}x wrk's closed loop\n"
        f"  garbage collections per generation during the run: {figures['gc_collections']}"
    )
    # What a run keeps grows with its intervals (their records), never with its requests: a run twice
    # as long keeps about as many more objects as it has more records.
    longer, _ = run_meshload(url, 2 * seconds, OPEN_LOOP_RATE, arrival)
    more_requests = longer["completed"] - figures["completed"]
    more_objects = longer["blocks_kept"] - figures["blocks_kept"]
    kept_per_request = more_objects / max(more_requests, 1)
    print(
        f"  memory: objects still allocated after the run: {figures['blocks_kept']:,} ({seconds:g} s), "
        f"{longer['blocks_kept']:,} ({2 * seconds:g} s): {more_objects:+,} for {more_requests:+,} requests "
        f"= {kept_per_request:.4f} per request"
    )
    return {
        "arrival": arrival,
        "seconds": seconds,
        "rate_planned": OPEN_LOOP_RATE,
        "sent_per_s": figures["sent_rate_full_intervals"],
        "lag_p99_ms": figures["lag_p99_ms"],
        "lag_p999_ms": figures["lag_p999_ms"],
        "late": figures["late"],
        "errors": figures["errors"],
        "holds": open_loop_holds(figures, OPEN_LOOP_RATE),
        "core_share": figures["run_cpu_s"] / figures["elapsed_s"],
        "polling_share": figures["spin_s"] / figures["elapsed_s"],
        "busy_us_per_request": busy_us,
        "wrk_us_per_request": reference.cpu_us_per_request,
        "gc_collections": figures["gc_collections"],
        "objects_kept_per_request": kept_per_request,
        "highest_rate_held": search_highest_rate(url, arrival) if search else None,
    }


@dataclass(frozen=True)
class CutWay:
    """One way a run's cuts and records are made, compared in `bench_cuts`."""

    label: str
    fold_process: str  # MESHLOAD_FOLD_PROCESS
    engine_process: str = "never"  # MESHLOAD_ENGINE_PROCESS ("always": traced in the child, at its exit)
    publish: bool = False  # the records go to a real Redis through the worker's record publisher


#: The histograms folded and encoded on the engine's loop in small pieces, or in the fold process.
CUT_WAYS = (CutWay("histograms on the loop", "never"), CutWay("histograms in the fold process", "always"))
#: With `--cuts-publish`: the records delivered to a real Redis by the worker's record publisher, as a
#: real worker's are, with the engine in the worker's process, then in a child of its own (traced there).
PUBLISH_WAYS = (
    CutWay("fold process, records published from the engine's process", "always", publish=True),
    CutWay("fold process, engine in its own process, records published by the worker", "always", "always", True),
)


def bench_cuts(
    url: str, seconds: float, rate: float, rounds: int, publish: bool = False
) -> list[tuple[int, CutWay, dict[str, Any]]]:
    """Whether interval cuts show in the schedule lag: open loop, sends just after a cut beside the rest,
    with the cut on the engine's loop and with the histograms in the fold process, alternating."""
    from meshload.coordinator.redis_server import PrivateRedis

    print(f"\ninterval cuts and the schedule lag, open loop at {rate:,.0f} rps, {seconds:g} s, {rounds} round(s):")
    window_ms = f"{CUT_WINDOW_NS / 1e6:g} ms"
    ways = [*CUT_WAYS, *PUBLISH_WAYS] if publish else list(CUT_WAYS)
    redis = PrivateRedis() if publish else None
    redis_url = redis.start() if redis is not None else ""
    site = Path(tempfile.mkdtemp(prefix="meshload-bench-site-"))
    (site / "sitecustomize.py").write_text(
        SITECUSTOMIZE.format(env=ENGINE_TRACE_ENV, bench_dir=str(Path(__file__).resolve().parent))
    )
    runs = []
    try:
        for round_i in range(rounds):
            for way in ways:
                env = {
                    **os.environ,
                    "MESHLOAD_FOLD_PROCESS": way.fold_process,
                    "MESHLOAD_ENGINE_PROCESS": way.engine_process,
                }
                command = [*meshload_command(url, seconds, rate), "--lag-trace"]
                traced = site / "engine-trace.json"
                traced.unlink(missing_ok=True)
                if way.engine_process == "always":
                    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
                    env[ENGINE_TRACE_ENV] = str(traced)
                if way.publish:
                    command += ["--publish", redis_url]
                figures = json.loads(run_measured(command, env=env).out.strip().splitlines()[-1])
                if traced.exists():
                    figures.update(json.loads(traced.read_text()))
                runs.append((round_i, way, figures))
    finally:
        if redis is not None:
            redis.stop()
        shutil.rmtree(site, ignore_errors=True)
    for round_i, way, figures in runs:
        print(f"\n round {round_i + 1}, {way.label}:")
        print(
            f"  schedule lag of the run (its records): p99 {figures['lag_p99_ms']:.3f} ms, p99.9 "
            f"{figures['lag_p999_ms']:.3f} ms, max {figures['lag_max_ms']:.3f} ms; "
            f"sent {figures['sent_rate_full_intervals']:,.0f}/s"
        )
        for name, group in (
            ("near_cuts", f"planned < {window_ms} after a cut"),
            ("near_chunks", f"< {window_ms} after a chunk (no cut)"),
            ("near_handed", f"< {window_ms} after a record handed on"),
            ("elsewhere", "the rest"),
        ):
            print(
                f"  {group:<32} lag p90 {figures.get(f'lag_{name}_p90_us', float('nan')):>6.0f} us, "
                f"p99 {figures.get(f'lag_{name}_p99_us', float('nan')):>6.0f} us, "
                f"max {figures.get(f'lag_{name}_max_us', float('nan')):>8.0f} us"
            )
        print(f"  ({figures['sends_near_cuts']:,} sends near cuts)")
        if "lag_run_p99_us" in figures:
            print(
                f"  the run's lag p99 / p99.9 {figures['lag_run_p99_us']:.0f} / {figures['lag_run_p999_us']:.0f} us, "
                f"without the sends after cuts {figures['lag_run_without_cuts_p99_us']:.0f} / "
                f"{figures['lag_run_without_cuts_p999_us']:.0f} us; sends after cuts: "
                f"{figures['near_cuts_share']:.1%} of all, {figures['near_cuts_share_of_p99_tail']:.1%} of the "
                f"latest 1 %, {figures['near_cuts_share_of_p999_tail']:.1%} of the latest 0.1 %"
            )
        print(
            f"  the loop's CPU in the cuts: {figures['cuts_total_us']:,.0f} us in {figures['cut_pieces']} pieces, "
            f"the longest {figures['cut_longest_piece_us']:,.0f} us; folds of a full buffer (or their steps): "
            f"{figures['hot_path_folds']}, the longest {figures['hot_path_fold_longest_us']:,.0f} us"
        )
        print(
            f"  CPU: the engine's process {figures['run_cpu_s']:.2f} s, its fold process {figures['fold_cpu_s']:.2f} s"
        )
        print("  each kind of piece (the loop's CPU): count, median and longest, us")
        for kind, (count, median_us, longest_us) in figures["pieces"].items():
            print(f"    {kind:<44} {count:>5} {median_us:>8.1f} {longest_us:>8.1f}")
    return runs


#: The lag figures of `bench_cuts` kept in the results, by group of sends.
CUT_GROUPS = ("near_cuts", "near_chunks", "near_handed", "elsewhere")


def cuts_results(runs: list[tuple[int, CutWay, dict[str, Any]]], rate: float, seconds: float) -> dict[str, Any]:
    """What `bench_cuts` measured, per way and round: the lag of each group of sends, and the cuts' pieces."""
    ways: dict[str, list[dict[str, Any]]] = {}
    for _, way, figures in runs:
        ways.setdefault(way.label, []).append(
            {
                "lag_p99_ms": figures["lag_p99_ms"],
                "sent_per_s": figures["sent_rate_full_intervals"],
                "lag_us": {
                    group: {q: figures[f"lag_{group}_{q}_us"] for q in ("p90", "p99", "max")}
                    for group in CUT_GROUPS
                    if f"lag_{group}_p99_us" in figures
                },
                "run_lag_us": {
                    key: figures[key]
                    for key in (
                        "lag_run_p99_us",
                        "lag_run_p999_us",
                        "lag_run_without_cuts_p99_us",
                        "lag_run_without_cuts_p999_us",
                        "near_cuts_share",
                        "near_cuts_share_of_p99_tail",
                        "near_cuts_share_of_p999_tail",
                    )
                    if key in figures
                },
                "cuts_cpu_us": figures["cuts_total_us"],
                "cut_pieces": figures["cut_pieces"],
                "longest_piece_us": figures["cut_longest_piece_us"],
            }
        )
    return {"rate": rate, "seconds": seconds, "ways": ways}


# -- instructions and system calls per request -----------------------------------------------------

#: The system calls of a request loop (the rest, at start-up, cancels out between the two runs).
LOOP_SYSCALLS = ("read", "write", "readv", "writev", "recvfrom", "sendto", "epoll_wait", "epoll_pwait", "epoll_ctl")


@dataclass
class Counted:
    """What one run under valgrind or strace counted, and the requests it completed."""

    requests: int
    instructions: int = 0
    syscalls: dict[str, int] | None = None


def wrk_requests(out: str) -> int:
    match = re.search(r"(\d+) requests in", out)
    assert match, out
    return int(match.group(1))


def meshload_requests(out: str) -> int:
    figures = next(line for line in reversed(out.splitlines()) if line.startswith("{"))
    return int(json.loads(figures)["completed"])


def run_counted(prefix: list[str], command: list[str], env: dict[str, str] | None = None) -> str:
    """Run `command` under `prefix` (valgrind, strace) on the generator's CPU; stdout and stderr."""
    done = subprocess.run(
        [*pinned(GENERATOR_CPU), *prefix, *command],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, **(env or {})},
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(prefix[:1] + command[:2])} failed ({done.returncode}): {done.stderr[-500:]}")
    return done.stdout + done.stderr


def callgrind(
    command: list[str], requests_of: Any, workdir: Path, *options: str, env: dict[str, str] | None = None
) -> Counted:
    """User-space instructions of `command` (callgrind's Ir; the kernel's work in system calls is not
    counted; its child processes are not followed) and the requests it completed."""
    out = run_counted(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={workdir}/callgrind.%p", *options], command, env
    )
    match = re.search(r"Collected : (\d+)", out)
    assert match, out[-2000:]
    return Counted(requests_of(out), instructions=int(match.group(1)))


def strace_counts(command: list[str], requests_of: Any, workdir: Path) -> Counted:
    """System calls of `command` and its threads (`strace -c -f`), by name."""
    summary = workdir / "strace.txt"
    out = run_counted(["strace", "-f", "-c", "-o", str(summary)], command)
    calls: dict[str, int] = {}
    for line in summary.read_text().splitlines():
        fields = line.split()
        # % time, seconds, usecs/call, calls, [errors,] syscall
        if len(fields) >= 5 and fields[-1] != "total" and fields[3].isdigit():
            calls[fields[-1]] = int(fields[3])
    return Counted(requests_of(out), syscalls=calls)


def marginal(short: Counted, long: Counted, value: Any) -> float:
    """Per request, between a short and a long run: start-up and shutdown cancel out."""
    requests = long.requests - short.requests
    if requests <= 0:
        return float("nan")
    return (value(long) - value(short)) / requests


def bench_instructions(url: str, short_s: float, long_s: float, workdir: Path) -> dict[str, Any] | None:
    """Instructions and system calls per request, meshload's closed loop beside wrk's, both counted
    rather than timed: callgrind counts the same instructions however busy the machine is."""
    if shutil.which("valgrind") is None or shutil.which("strace") is None:
        print("\ninstructions per request: needs valgrind and strace (apt-get install valgrind strace)")
        return None
    long_interval_s = long_s + 10  # one interval: the cuts' cost is then a fixed cost that cancels out

    def wrk(seconds: float) -> list[str]:
        return ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds:g}s", url]

    def meshload(seconds: float, interval_s: float = long_interval_s) -> list[str]:
        return meshload_command(url, seconds, 0, interval_s)

    # Only meshload's event loop is counted (interpreter start-up and imports are not part of a run);
    # wrk's binary has no symbols to select by, and both are taken as the difference of two runs anyway.
    loop_only = "--toggle-collect=uv_run"
    wrk_runs = [callgrind(wrk(s), wrk_requests, workdir) for s in (short_s, long_s)]

    def instructions(counted: Counted) -> float:
        return counted.instructions

    wrk_ir = marginal(wrk_runs[0], wrk_runs[1], instructions)

    def loop_figures(mode: str) -> tuple[float, Counted]:
        """The loop's instructions per request, histograms folded `mode` (`MESHLOAD_FOLD_PROCESS`: on
        the loop, or in the fold process, whose instructions are not counted)."""
        env = {"MESHLOAD_FOLD_PROCESS": mode}
        runs = [callgrind(meshload(s), meshload_requests, workdir, loop_only, env=env) for s in (short_s, long_s)]
        return marginal(runs[0], runs[1], instructions), runs[1]

    ml_ir, ml_long = loop_figures("never")
    aside_ir, _ = loop_figures("always")
    # The cuts of one-second intervals: what the long run with them costs beyond its requests. (With the
    # fold process, a cut's cost depends on a buffer filling within an interval, which the rate under
    # valgrind does not do: `--only cuts` times its pieces instead.)
    with_cuts = callgrind(meshload(long_s, 1.0), meshload_requests, workdir, loop_only)
    cuts = math.floor(long_s) - 1
    cut_ir = (with_cuts.instructions - ml_long.instructions - ml_ir * (with_cuts.requests - ml_long.requests)) / max(
        cuts, 1
    )
    print(
        f"\ninstructions per request, closed loop x{CONNECTIONS} "
        f"(callgrind, user space; {long_s:g} s run minus {short_s:g} s run):"
    )
    print(f"  wrk       {wrk_ir:>9,.0f} Ir/req  ({wrk_runs[1].requests:,} requests under valgrind)")
    print(f"  meshload  {ml_ir:>9,.0f} Ir/req  ({ml_long.requests:,} requests under valgrind, full recording)")
    print(f"  ratio     {ml_ir / wrk_ir:>9.2f} x wrk")
    print(f"  one interval cut (fold, encode 3 histograms, record): {cut_ir:,.0f} Ir")
    print(
        f"  with the fold process (MESHLOAD_FOLD_PROCESS=always), the loop's part: {aside_ir:,.0f} Ir/req "
        f"({aside_ir / wrk_ir:.2f} x wrk)"
    )

    # The open loop, paced by its timer: one wake-up, dispatch and response per request.
    open_runs = [
        callgrind(
            meshload_command(url, s, COUNTED_OPEN_LOOP_RATE, long_interval_s),
            meshload_requests,
            workdir,
            loop_only,
            env={"MESHLOAD_FOLD_PROCESS": "never"},
        )
        for s in (short_s, long_s)
    ]
    open_ir = marginal(open_runs[0], open_runs[1], instructions)
    print(
        f"  open loop at {COUNTED_OPEN_LOOP_RATE} rps, each send woken by its timer: {open_ir:,.0f} Ir/req "
        f"({open_runs[1].requests:,} requests under valgrind)"
    )

    wrk_calls = [strace_counts(wrk(s), wrk_requests, workdir) for s in (short_s, long_s)]
    ml_calls = [strace_counts(meshload(s, 1.0), meshload_requests, workdir) for s in (short_s, long_s)]
    print(f"system calls per request (strace -c -f; {long_s:g} s run minus {short_s:g} s run):")
    syscalls: dict[str, float] = {}
    for name, runs in (("wrk", wrk_calls), ("meshload", ml_calls)):
        names = sorted({n for run in runs for n in (run.syscalls or {})})
        per_call = {n: marginal(runs[0], runs[1], lambda c, n=n: (c.syscalls or {}).get(n, 0)) for n in names}
        loop_total = sum(v for n, v in per_call.items() if n in LOOP_SYSCALLS)
        total = sum(per_call.values())
        top = ", ".join(f"{n} {v:.2f}" for n, v in sorted(per_call.items(), key=lambda kv: -kv[1])[:5] if v >= 0.005)
        print(f"  {name:<9} {total:>6.2f} in all, {loop_total:.2f} in the request loop  ({top})")
        syscalls[name] = total
    return {
        "wrk_instructions_per_request": wrk_ir,
        "meshload_instructions_per_request": ml_ir,
        "meshload_fold_process_instructions_per_request": aside_ir,
        "instructions_per_cut": cut_ir,
        "open_loop_rate": COUNTED_OPEN_LOOP_RATE,
        "open_loop_instructions_per_request": open_ir,
        "syscalls_per_request": syscalls,
    }


def search_highest_rate(url: str, arrival: str, seconds: float = 3.0, tries: int = 2) -> float:
    """Bisect the highest rate with lag p99 < 1 ms and the rate held within 1%.

    Each rate gets up to `tries` runs and holds if one of them does: on a shared machine a
    neighbour's burst can stall any single run; every run is printed."""
    low, high = 10_000.0, 160_000.0
    while high - low > 5_000:
        rate = round((low + high) / 2, -2)
        holds = False
        for _ in range(tries):
            figures, _ = run_meshload(url, seconds, rate, arrival)
            holds = open_loop_holds(figures, rate)
            print(
                f"  {rate:>8,.0f} rps: sent {figures['sent_rate_full_intervals']:>8,.0f}/s, "
                f"lag p99 {figures['lag_p99_ms']:.3f} ms, CPU {figures['run_cpu_s'] / figures['elapsed_s']:.0%}"
                f" (busy {(figures['run_cpu_s'] - figures['spin_s']) / figures['elapsed_s']:.0%})"
                f" -> {'holds' if holds else 'falls behind'}"
            )
            if holds:
                break
        low, high = (rate, high) if holds else (low, rate)
    print(f"  highest rate held by one worker: ~{low:,.0f} rps")
    return low


if __name__ == "__main__":
    main()
