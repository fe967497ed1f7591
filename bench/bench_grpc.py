"""Benchmark of meshload's gRPC and HTTP/2 engines: CPU per call against peers, side by side, as ratios.

Not a test: it prints a table. Servers are pinned to CPU 0 and every generator to CPU 1 (`taskset`, as
`bench_engine.py` does), one generator after another, for the same short time, closed loop with 32
requests in flight on one HTTP/2 connection:

gRPC, against one grpcio server (`tests/support/grpc_servers.py ok`, `meshload.test.Echo/Unary`):

- meshload's gRPC engine (grpc.aio), full recording;
- a ghz-style client written on grpcio's own asyncio API: 32 coroutines awaiting calls on one channel,
  counting them, nothing else (what a minimal grpcio benchmark client does);
- `h2load` (nghttp2) sending the same call as gRPC framing over HTTP/2 (`content-type:
  application/grpc`, a length-prefixed message), the C peer.

HTTP/2, against one nginx (`http2`, h2c with prior knowledge, `return 200 "ok"`):

- meshload's HTTP/2 engine (its own framing over an asyncio Protocol, hpack), full recording;
- `h2load -c1 -m32`.

CPU per call is the generator's user+system CPU divided by completed calls: for meshload and the
grpc.aio client, the CPU of the measured run itself (the process's start-up excluded); for h2load,
the whole process (its start-up is negligible).

    python bench/bench_grpc.py [--seconds 5] [--rounds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench_engine import GENERATOR_CPU, SERVER_CPU, Figures, Nginx, median_round, pinned, run_measured
from bench_results import add_save_option, note_start, save_results

_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:  # for tests.support, which adds the checkout's src/ where meshload is not installed
    sys.path.insert(0, str(_REPO))

from tests.support.grpc_servers import PROTO, SERVICE  # noqa: E402
from tests.support.http_servers import ServerHandle, launch_server  # noqa: E402

IN_FLIGHT = 32
METHOD = f"/{SERVICE}/Unary"
REQUEST_JSON = '{"id": 7, "text": "benchmark"}'

NGINX_H2C_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    keepalive_requests 10000000;
    http2_max_concurrent_streams 256;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port} http2;
        location / {{ return 200 "ok"; }}
    }}
}}
"""


def request_bytes() -> bytes:
    """The benchmark's request message, serialized (the same bytes every generator sends)."""
    from meshload.scenarios.grpc_calls import grpc_schema
    from meshload.scenarios.protos import encode_request, method_schema

    schema = grpc_schema([PROTO])
    return encode_request(method_schema(schema.descriptor_set, SERVICE, "Unary"), REQUEST_JSON)


def start_grpc_server() -> ServerHandle:
    command = [*pinned(SERVER_CPU), sys.executable, str(_REPO / "tests" / "support" / "grpc_servers.py"), "ok"]
    return launch_server(command, "ok", "grpc")


# -- children: each runs one generator and prints its figures as JSON ------------------------------


def meshload_child(args: argparse.Namespace) -> None:
    from meshload.scenarios.grpc_calls import grpc_schema
    from meshload.scenarios.plan import Plan
    from meshload.worker.standalone import collect_records

    options: dict[str, object] = {"max_connections": 1}
    if args.url.startswith("grpc"):
        options.update(grpc=grpc_schema([PROTO]), body=REQUEST_JSON)
    else:
        options.update(http2=True, max_streams_per_connection=IN_FLIGHT)
    plan = Plan(
        targets=[{"url": args.url}],
        load={"kind": "closed", "concurrency": IN_FLIGHT},
        duration_s=args.seconds,
        **options,
    )
    before = psutil.Process().cpu_times()
    _, outcomes = collect_records(plan, workers=1)
    after = psutil.Process().cpu_times()
    outcome = outcomes[0]
    print(
        json.dumps(
            {
                "completed": outcome.completed,
                "errors": outcome.errors,
                "seconds": outcome.elapsed_s,
                "cpu_s": (after.user + after.system) - (before.user + before.system),
                "system_s": after.system - before.system,
            }
        )
    )


def grpc_aio_child(args: argparse.Namespace) -> None:
    """The ghz-style peer: IN_FLIGHT coroutines calling on one grpc.aio channel until the time is up."""
    import grpc

    request = request_bytes()

    async def main() -> dict[str, object]:
        async with grpc.aio.insecure_channel(args.url.split("//", 1)[1].split("/", 1)[0]) as channel:
            call = channel.unary_unary(METHOD)
            await call(request)  # connected before the clock starts
            completed = 0
            failed = 0
            end = time.monotonic() + args.seconds

            async def worker() -> None:
                nonlocal completed, failed
                while time.monotonic() < end:
                    try:
                        await call(request, timeout=5)
                        completed += 1
                    except grpc.aio.AioRpcError:
                        failed += 1

            before = psutil.Process().cpu_times()
            started = time.monotonic()
            await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
            elapsed = time.monotonic() - started
            after = psutil.Process().cpu_times()
            return {
                "completed": completed,
                "errors": {"failed": failed} if failed else {},
                "seconds": elapsed,
                "cpu_s": (after.user + after.system) - (before.user + before.system),
                "system_s": after.system - before.system,
            }

    try:
        import uvloop

        figures = uvloop.run(main())
    except ImportError:
        figures = asyncio.run(main())
    print(json.dumps(figures))


def run_child(kind: str, url: str, seconds: float) -> tuple[dict, float]:
    measured = run_measured([sys.executable, __file__, "--child", kind, "--url", url, "--seconds", str(seconds)])
    return json.loads(measured.out.strip().splitlines()[-1]), measured.cpu_s


def bench_child(kind: str, name: str, url: str, seconds: float) -> Figures:
    figures, process_cpu_s = run_child(kind, url, seconds)
    note = f"process CPU incl. start-up: {process_cpu_s * 1e6 / max(figures['completed'], 1):.1f} us/call"
    if figures["errors"]:
        note += f"; errors {figures['errors']}"
    return Figures(name, figures["completed"], figures["seconds"], figures["cpu_s"], figures["system_s"], note)


def bench_h2load(name: str, url: str, seconds: float, workdir: Path, *, grpc_body: bytes | None = None) -> Figures:
    command = ["h2load", "-c1", f"-m{IN_FLIGHT}", "-D", f"{seconds:g}", "-t1"]
    if grpc_body is not None:
        body = workdir / "request.grpc"
        # gRPC's length-prefixed message: no compression, 4-byte big-endian length, the bytes.
        body.write_bytes(b"\x00" + len(grpc_body).to_bytes(4, "big") + grpc_body)
        command += ["-d", str(body), "-H", "content-type: application/grpc", "-H", "te: trailers"]
    measured = run_measured([*command, url])
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", measured.out)
    finished = re.search(r"finished in ([\d.]+)(m?s)", measured.out)
    assert done and finished, measured.out
    seconds_taken = float(finished.group(1)) / (1000 if finished.group(2) == "ms" else 1)
    succeeded = int(done.group(2))
    note = "" if succeeded == int(done.group(1)) else f"{int(done.group(1)) - succeeded} not 2xx"
    return Figures(name, succeeded, seconds_taken, measured.cpu_s, measured.system_s, note)


def print_table(title: str, rows: list[Figures], references: list[Figures]) -> None:
    print(f"\n{title}")
    heads = "".join(f"{'x ' + ref.tool.split()[0]:>12}" for ref in references)
    print(f"{'generator':<34}{'calls/s':>10}{'CPU us/call':>13}{heads}  note")
    for row in rows:
        ratios = "".join(f"{row.cpu_us_per_request / ref.cpu_us_per_request:>12.2f}" for ref in references)
        print(f"{row.tool:<34}{row.rate:>10,.0f}{row.cpu_us_per_request:>13.1f}{ratios}  {row.note}")


def main() -> None:
    parser = argparse.ArgumentParser(description="meshload gRPC and HTTP/2 engines vs grpc.aio and h2load")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=1, help="rounds of every generator (median kept)")
    parser.add_argument("--child", choices=["meshload", "grpc-aio"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    add_save_option(parser)
    args = parser.parse_args()
    if args.save:
        note_start()
    if args.child == "meshload":
        meshload_child(args)
        return
    if args.child == "grpc-aio":
        grpc_aio_child(args)
        return
    if shutil.which("h2load") is None:
        sys.exit("h2load is missing: apt-get install nghttp2-client (scripts/install-deps does)")

    workdir = Path(tempfile.mkdtemp(prefix="meshload-bench-grpc-"))
    grpc_server = start_grpc_server()
    nginx = Nginx(workdir, NGINX_H2C_CONF)
    grpc_url = f"grpc://127.0.0.1:{grpc_server.port}{METHOD}"
    h2load_grpc_url = f"http://127.0.0.1:{grpc_server.port}{METHOD}"
    body = request_bytes()
    try:
        print(f"CPU {SERVER_CPU}: servers; CPU {GENERATOR_CPU}: generators; {args.seconds:g} s each")
        rounds: dict[str, list[Figures]] = {}
        for _ in range(args.rounds):
            for name, measure in (
                (
                    "meshload gRPC (grpc.aio)",
                    lambda: bench_child("meshload", "meshload gRPC engine", grpc_url, args.seconds),
                ),
                (
                    "grpc.aio client",
                    lambda: bench_child("grpc-aio", "grpc.aio ghz-style client", grpc_url, args.seconds),
                ),
                (
                    "h2load gRPC",
                    lambda: bench_h2load("h2load gRPC framing", h2load_grpc_url, args.seconds, workdir, grpc_body=body),
                ),
                (
                    "meshload HTTP/2",
                    lambda: bench_child("meshload", "meshload HTTP/2 engine", nginx.url, args.seconds),
                ),
                ("h2load h2c", lambda: bench_h2load("h2load -c1 -m32 (h2c)", nginx.url, args.seconds, workdir)),
            ):
                rounds.setdefault(name, []).append(measure())
        best = {name: median_round(figures) if len(figures) > 1 else figures[0] for name, figures in rounds.items()}
        grpc_rows = [best["meshload gRPC (grpc.aio)"], best["grpc.aio client"], best["h2load gRPC"]]
        print_table("gRPC unary calls, one grpcio server", grpc_rows, grpc_rows[1:])
        h2_rows = [best["meshload HTTP/2"], best["h2load h2c"]]
        print_table("HTTP/2 GET, nginx h2c", h2_rows, h2_rows[1:])
        if args.save:
            save_results(
                "grpc",
                {
                    "in_flight": IN_FLIGHT,
                    "seconds": args.seconds,
                    "us_per_call": {name: row.cpu_us_per_request for name, row in best.items()},
                },
            )
    finally:
        nginx.stop()
        grpc_server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
