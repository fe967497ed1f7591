"""How fast the local testbed starts and how much BookInfo traffic it carries, with the CPU split.

    python bench/bench_testbed.py [--functions none,sidecar,mtls] [--topology sidecar|per-node|ingress-only]
                                  [--duration-s 10] [--connections 32] [--sustain-rps 1000] [--json]

For each function, two bounded runs against /productpage through the ingress on 127.0.0.1, with the
testbed's processes sampled:

- capacity: wrk, closed loop, keep-alive, `--connections` connections: the most it carries;
- sustain: hey at a fixed `--sustain-rps` (20 workers, each rate-limited): does it keep up, with
  which p99 and which status codes.

It prints requests per second, latency, and where the machine's CPU went (ingress, sidecars,
applications, load generator, whole machine) in millicores. The machine may be shared: the
whole-machine figure shows how much of the CPU others used meanwhile.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from meshload.coordinator.mesh.resources import ProcessSampler
from meshload.testbed import Testbed

HEY_WORKERS = 20
_WRK_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
_WRK_LATENCY = re.compile(r"Latency\s+([\d.]+)(us|ms|s)")
_WRK_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_HEY_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
_HEY_P99 = re.compile(r"99%+ in ([\d.]+) secs")
_HEY_STATUS = re.compile(r"\[(\d+)\]\s+(\d+) responses")
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
_BUSY_FIELDS = ("user", "system", "nice", "irq", "softirq")


def _rate(pattern: re.Pattern[str], output: str) -> float:
    """The requests per second a peer tool printed (its output must have it)."""
    found = pattern.search(output)
    if found is None:
        raise RuntimeError(f"no rate in the tool's output:\n{output[-2000:]}")
    return float(found.group(1))


def _sampled(bed: Testbed, argv: list[str], timeout_s: float) -> tuple[str, dict]:
    """Run a load generator to completion while sampling the testbed, it, and the whole machine."""
    generator = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def groups() -> dict[str, list[int]]:
        return {**bed.pids_by_kind(), "generator": [generator.pid]}

    machine_before = psutil.cpu_times()
    sampler = ProcessSampler(groups, interval_s=1.0).start()
    output, _ = generator.communicate(timeout=timeout_s)
    usage = sampler.stop()
    machine_after = psutil.cpu_times()
    busy_s = sum(getattr(machine_after, f) - getattr(machine_before, f) for f in _BUSY_FIELDS)
    cpu = {kind: round(u.cpu_mcores) for kind, u in usage.items()}
    cpu["machine"] = round(1000 * busy_s / sampler.window_s)
    return output, {"cpu_mcores": cpu, "mem_mb": {kind: round(u.mem_mb, 1) for kind, u in usage.items()}}


def _capacity(bed: Testbed, duration_s: float, connections: int) -> dict:
    url = f"{bed.ingress_url}/productpage"
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{duration_s:g}s", url]
    output, figures = _sampled(bed, argv, duration_s + 30)
    latency = _WRK_LATENCY.search(output)
    non_2xx = _WRK_NON_2XX.search(output)
    return {
        "rps": _rate(_WRK_RATE, output),
        "mean_latency_ms": float(latency.group(1)) * _UNIT_MS[latency.group(2)] if latency else None,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        **figures,
    }


def _sustain(bed: Testbed, duration_s: float, rate_rps: float) -> dict:
    url = f"{bed.ingress_url}/productpage"
    per_worker = rate_rps / HEY_WORKERS
    argv = ["hey", "-z", f"{duration_s:g}s", "-c", str(HEY_WORKERS), "-q", f"{per_worker:g}", url]
    output, figures = _sampled(bed, argv, duration_s + 30)
    p99 = _HEY_P99.search(output)
    return {
        "target_rps": rate_rps,
        "rps": _rate(_HEY_RATE, output),
        "p99_ms": float(p99.group(1)) * 1000 if p99 else None,
        "status_codes": {code: int(count) for code, count in _HEY_STATUS.findall(output)},
        **figures,
    }


def _cpu_line(cpu: dict) -> str:
    parts: list[tuple[str, Callable[[dict], int]]] = [
        ("ingress", lambda c: c.get("ingress", 0)),
        ("sidecars", lambda c: c.get("sidecar", 0)),
        ("apps", lambda c: c.get("app", 0)),
        ("generator", lambda c: c.get("generator", 0)),
        ("machine", lambda c: c.get("machine", 0)),
    ]
    return "  ".join(f"{name} {value(cpu):>5}" for name, value in parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--functions", default="none,sidecar,mtls")
    parser.add_argument("--topology", default="sidecar", help="sidecar, per-node or ingress-only")
    parser.add_argument("--duration-s", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--sustain-rps", type=float, default=1000.0)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    functions = [name.strip() for name in args.functions.split(",") if name.strip()]

    with tempfile.TemporaryDirectory(prefix="meshload-bench-") as folder:
        bed = Testbed(Path(folder))
        started = time.monotonic()
        bed.up(functions[0], topology=args.topology)
        figures: dict = {
            "up_s": round(time.monotonic() - started, 2),
            "cores": psutil.cpu_count(),
            "topology": args.topology,
            "functions": {},
        }
        try:
            for function in functions:
                bed.apply(function)
                time.sleep(0.5)
                figures["functions"][function] = {
                    "capacity": _capacity(bed, args.duration_s, args.connections),
                    "sustain": _sustain(bed, args.duration_s, args.sustain_rps),
                }
        finally:
            bed.down()

    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(
        f"testbed ({args.topology}) up from nothing in {figures['up_s']:.2f} s; {figures['cores']} cores;"
        " CPU in millicores (sidecars: the node proxies in per-node)"
    )
    for function, runs in figures["functions"].items():
        capacity, sustain = runs["capacity"], runs["sustain"]
        print(
            f"{function:<10} capacity {capacity['rps']:>6.0f} rps, mean {capacity['mean_latency_ms'] or 0:6.2f} ms, "
            f"non-2xx {capacity['non_2xx']}   | {_cpu_line(capacity['cpu_mcores'])}"
        )
        print(
            f"{'':<10} sustain  {sustain['rps']:>6.0f} of {sustain['target_rps']:.0f} rps, "
            f"p99 {sustain['p99_ms'] or 0:6.2f} ms, "
            f"codes {sustain['status_codes']}   | {_cpu_line(sustain['cpu_mcores'])}"
        )


if __name__ == "__main__":
    main()
