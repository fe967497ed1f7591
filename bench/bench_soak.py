"""Memory of a long run: the coordinator's and its workers' resident memory (RSS) over a soak at
several thousand requests per second against one local nginx, and whether the per-minute timeseries
covers the whole run.

Not a test: it prints a table. `meshload run` is started as a process (local workers, a private
Redis) and its process tree is sampled every few seconds with psutil. Growth is measured from the end
of the first minute (imports, connections and the first dense histograms are in place by then) to
the end of the run: a run whose memory is flat grows by a few percent at most, whatever its length.
Completeness: smp.json's `minutes` has one point per minute of the run, and every full minute holds
rate x 60 requests within 1%.

    python bench/bench_soak.py [--minutes 30] [--rate 4000] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from bench_engine import Nginx
from bench_results import add_save_option, note_start, save_results

SAMPLE_EVERY_S = 5.0
WARMUP_S = 5


def rss_mb(process: psutil.Process) -> tuple[float, float]:
    """(the coordinator's RSS, the largest worker's RSS) in MB; meshload workers are its children."""
    try:
        own = process.memory_info().rss / 1e6
        workers = [
            child.memory_info().rss / 1e6
            for child in process.children(recursive=True)
            if "worker" in " ".join(child.cmdline())
        ]
    except psutil.Error:
        return 0.0, 0.0
    return own, max(workers, default=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=4000.0)
    parser.add_argument("--workers", type=int, default=2)
    add_save_option(parser)
    args = parser.parse_args()
    if args.save:
        note_start()
    with tempfile.TemporaryDirectory(prefix="meshload-soak-") as folder:
        workdir = Path(folder)
        nginx = Nginx(workdir)
        out = workdir / "run"
        command = [
            sys.executable, "-m", "meshload", "run", nginx.url, "--rate", str(args.rate),
            "--duration", f"{args.minutes * 60:g}s", "--warmup", f"{WARMUP_S}s", "--workers", str(args.workers),
            "--placement", "local", "--out", str(out), "--no-live", "--no-history", "--checkpoint", "5m",
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("MESHLOAD_")}
        started = time.monotonic()
        run = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        coordinator = psutil.Process(run.pid)
        samples: list[tuple[float, float, float]] = []
        try:
            while run.poll() is None:
                own, worker = rss_mb(coordinator)
                if own:
                    samples.append((time.monotonic() - started, own, worker))
                time.sleep(SAMPLE_EVERY_S)
        finally:
            nginx.stop()
        if run.returncode != 0:
            raise SystemExit(f"the run failed (exit code {run.returncode})")
        block = json.loads((out / "smp.json").read_text())["meshload"]
    figures = report(args, samples, block)
    if args.save:
        save_results("soak", figures)


def growth_percent(start: float, end: float) -> float:
    return (end - start) / start * 100 if start else math.nan


def report(args: argparse.Namespace, samples: list[tuple[float, float, float]], block: dict) -> dict[str, Any]:
    """Print the soak's memory and completeness; the same figures, to keep."""
    load_end_s = WARMUP_S + args.minutes * 60
    during = [s for s in samples if 60.0 <= s[0] <= load_end_s]
    if len(during) < 2:
        raise SystemExit("too few samples after the first minute; run for 2 minutes or more")
    first, last = during[0], during[-1]
    print(f"soak: {args.minutes:g} min at {args.rate:g} req/s, {args.workers} worker(s), {len(samples)} RSS samples")
    print(f"{'':12}{'after 1 min':>14}{'at the end':>14}{'peak':>10}{'growth':>10}")
    figures: dict[str, Any] = {"minutes": args.minutes, "rate": args.rate, "workers": args.workers}
    for label, index in (("coordinator", 1), ("worker", 2)):
        peak = max(s[index] for s in during)
        growth = growth_percent(first[index], last[index])
        figures[f"{label}_rss_mb"] = [first[index], last[index]]
        figures[f"{label}_growth_percent"] = growth
        print(f"{label:12}{first[index]:>11.1f} MB{last[index]:>11.1f} MB{peak:>7.1f} MB{growth:>9.1f}%")
    # The coordinator keeps the last 10 minutes per second (then per minute): its memory fills that
    # window first, so growth is also shown from the 11th minute, when the window is full.
    settled = [s for s in during if s[0] >= 11 * 60]
    if len(settled) >= 2:
        for label, index in (("coordinator", 1), ("worker", 2)):
            start, end = settled[0][index], settled[-1][index]
            growth = growth_percent(start, end)
            figures[f"{label}_growth_from_minute_11_percent"] = growth
            print(f"{label} from minute 11: {start:.1f} MB -> {end:.1f} MB, growth {growth:.1f}%")
    print(
        "RSS every 5 min (coordinator / worker, MB): "
        + ", ".join(f"{s[0] / 60:.0f}m {s[1]:.1f}/{s[2]:.1f}" for s in samples if int(s[0]) % 300 < SAMPLE_EVERY_S)
    )
    minutes = block["minutes"]
    expected = math.ceil((WARMUP_S + args.minutes * 60) / 60)
    full = [m for m in minutes[:-1] if not m["warmup"]]
    off = [m for m in full if abs(m["completed"] - args.rate * 60) > 0.01 * args.rate * 60]
    print(
        f"minutes: {len(minutes)} of {expected} expected; {len(full) - len(off)} of {len(full)} full measured minutes "
        f"hold rate x 60 within 1%; completed {block['requests']:,} (measured), rate {block['actual_rps']:.1f} req/s"
    )
    print(f"the run's validity: {'valid' if block['valid'] else 'INVALID: ' + '; '.join(block['validity'])}")
    figures.update(
        valid=block["valid"],
        validity=block["validity"],
        minutes_recorded=len(minutes),
        minutes_expected=expected,
        full_minutes=len(full),
        full_minutes_within_1_percent=len(full) - len(off),
        requests=block["requests"],
    )
    return figures


if __name__ == "__main__":
    main()
