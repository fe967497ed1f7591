"""`meshload run` and `meshload worker` as a user runs them: real processes, exit codes, one-line errors,
environment variables, the summary and the output folder; and the live view's Prometheus endpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from tests.support.redis_server import RedisServer

from meshload.coordinator.live import LiveView, progress_line
from meshload.results.live_figures import LiveFigures

pytestmark = pytest.mark.timeout(90)

MESHLOAD = [sys.executable, "-m", "meshload"]


def meshload(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MESHLOAD_")}
    environment.update(env or {})
    return subprocess.run(
        [*MESHLOAD, *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout_s, check=False
    )


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["http://127.0.0.1:9/", "--rate", "10", "--duration", "5x"], '--duration: "5x" is not a duration'),
        (["http://127.0.0.1:9/", "--rate", "0"], "--rate: must be greater than 0 (got 0)"),
        (["http://127.0.0.1:9/"], "give --rate (requests per second, open loop)"),
        (["http://127.0.0.1:9/", "--rate", "5", "--concurrency", "2"], "exclude each other"),
        (["ftp://x/", "--rate", "5"], "URL: 'ftp://x/' is not an http://, https://, grpc:// or grpcs:// URL"),
        (
            ["http://127.0.0.1:9/", "--rate", "5", "-H", "NoColon"],
            '-H/--header: "NoColon" is not a header; use "Name: value"',
        ),
        (
            ["http://127.0.0.1:9/", "--rate", "5", "--on-worker-loss", "maybe"],
            ("'--on-worker-loss'", "'maybe' is not one of 'continue', 'abort'"),
        ),
        (["http://127.0.0.1:9/", "--rate", "abc"], ("'--rate'", "see `meshload run --help`")),
        (["http://127.0.0.1:9/", "--rate", "5", "--frobnicate"], ("No such option", "--frobnicate")),
        (["http://127.0.0.1:9/", "--rate", "5", "--metrics-port", "70000"], ("--metrics-port: 70000 is not a port",)),
        (["http://127.0.0.1:9/", "--rate", "5", "--workers", "0"], "--workers: 0 is not a worker count"),
        (["http://127.0.0.1:9/", "--rate", "5", "--workers", "k8s:x"], "--workers: k8s:x is not a worker count"),
        (
            ["http://127.0.0.1:9/", "--rate", "5", "--workers", "k8s:2", "--placement", "local"],
            "--workers k8s:2 takes the workers from Kubernetes; drop --placement local",
        ),
        (
            ["http://127.0.0.1:9/", "--rate", "5", "--workers", "k8s:2", "--redis", "redis://127.0.0.1:9/0"],
            "--workers k8s:N: which Deployment runs the workers? Give --k8s-deployment NAME",
        ),
        (
            ["http://127.0.0.1:9/", "--rate", "5", "-w", "k8s:2", "--k8s-deployment", "w", "--k8s-wait", "0s"],
            "--k8s-wait: must be longer than 0 s (got 0)",
        ),
        (["http://127.0.0.1:9/", "--rate", "5", "--results-ttl", "1d"], '--results-ttl: "1d" is not a duration'),
    ],
)
def test_bad_values_exit_2_with_one_line_naming_the_option(args, expected, tmp_path, monkeypatch, capsys) -> None:
    from meshload.cli import main

    monkeypatch.chdir(tmp_path)
    for name in [name for name in os.environ if name.startswith("MESHLOAD_")]:
        monkeypatch.delenv(name)
    with pytest.raises(SystemExit) as exit_info:
        main(["run", *args])
    assert exit_info.value.code == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for fragment in (expected,) if isinstance(expected, str) else expected:
        assert fragment in lines[0], lines
    assert not (tmp_path / "runs").exists()


def test_a_usage_error_from_the_console_script_is_one_line_without_traceback(tmp_path) -> None:
    completed = meshload("run", "http://127.0.0.1:9/", "--rate", "10", "--warmup", "soon", cwd=tmp_path)
    assert completed.returncode == 2
    assert error_lines(completed.stderr) == ['error: --warmup: "soon" is not a duration; use e.g. 30s, 5m, 1h']


def test_a_wrong_redis_password_exits_1_with_one_clear_line(tmp_path) -> None:
    with RedisServer(password="right") as server:
        completed = meshload(
            "run",
            "http://127.0.0.1:9/",
            "--rate",
            "5",
            "--duration",
            "1s",
            "--redis",
            server.url_with_password("wrong"),
            cwd=tmp_path,
        )
    assert completed.returncode == 1
    lines = error_lines(completed.stderr)
    assert lines[-1].startswith("error: Redis at redis://:***@127.0.0.1:") and "refused the password" in lines[-1]
    assert "wrong" not in completed.stderr and "Traceback" not in completed.stderr


def test_a_run_from_environment_variables_writes_its_folder_and_summary(http_server, tmp_path) -> None:
    completed = meshload(
        "run",
        http_server.url,
        "--label",
        "function=baseline",
        "-H",
        "X-Test: yes",
        cwd=tmp_path,
        env={"MESHLOAD_RATE": "100", "MESHLOAD_DURATION": "1500ms", "MESHLOAD_WORKERS": "2", "MESHLOAD_LIVE": "0"},
    )
    assert completed.returncode == 0, completed.stderr
    assert "requests  " in completed.stdout and "worker    " in completed.stdout
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and f"results in runs/{runs[0].name}" in completed.stderr
    smp = json.loads((runs[0] / "smp.json").read_text())
    served = http_server.counters()["requests"]
    assert smp["meshload"]["requests"] == served and 130 <= served <= 170
    assert smp["config"]["labels"]["function"] == "baseline"
    assert len(smp["meshload"]["workers"]) == 2


def test_every_run_option_has_an_environment_variable_in_help(tmp_path) -> None:
    completed = meshload("run", "--help", cwd=tmp_path, env={"COLUMNS": "200"})
    assert completed.returncode == 0
    for option in (
        "--rate",
        "--concurrency",
        "--duration",
        "--warmup",
        "--workers",
        "--connections",
        "--arrival",
        "--method",
        "--header",
        "--body",
        "--timeout",
        "--label",
        "--redis",
        "--out",
        "--strict",
        "--on-worker-loss",
        "--metrics-port",
    ):
        assert option in completed.stdout
    assert completed.stdout.count("MESHLOAD_") >= 20
    worker_help = meshload("worker", "--help", cwd=tmp_path, env={"COLUMNS": "200"})
    assert worker_help.returncode == 0 and "MESHLOAD_REDIS" in worker_help.stdout


def test_worker_without_a_reachable_redis_exits_1_with_one_line(tmp_path) -> None:
    from tests.support.redis_server import free_port

    completed = meshload("worker", "--redis", f"redis://127.0.0.1:{free_port()}/0", "--once", cwd=tmp_path)
    assert completed.returncode == 1
    assert error_lines(completed.stderr)[-1].startswith("error: cannot reach Redis at redis://127.0.0.1:")


def _figures(**changes: Any) -> LiveFigures:
    values: dict[str, Any] = {
        "elapsed_s": 3.0,
        "total_s": 10.0,
        "rate": 250.0,
        "sent_rate": 251.0,
        "p50_ms": 1.25,
        "p99_ms": 7.5,
        "lag_p99_ms": 0.2,
        "completed": 750,
        "errors": 3,
        "workers_alive": 2,
        "workers_lost": 1,
        "workers_finished": 0,
        "in_warmup": False,
    }
    values.update(changes)
    return LiveFigures(**values)


def test_live_figures_reach_prometheus_and_the_progress_line() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from meshload.results.interval import IntervalRecord
    from meshload.results.live_figures import LatencySummary

    line = progress_line(_figures(), workers_total=3)
    for part in ("3.0s/10s", "rate 250/s", "p50 1.25 ms", "p99 7.50 ms", "errors 3", "workers 2/3", "(1 lost)"):
        assert part in line
    view = LiveView(workers_total=3, run_id="live-run", show=False, metrics_port=0)
    summary = LatencySummary(quantiles={0.5: 0.00125, 0.99: 0.009}, count=900, sum_s=1.8)
    try:
        assert view.prometheus is not None
        for seq in (0, 1):
            view.record(
                IntervalRecord(
                    worker_id="w1",
                    seq=seq,
                    offset_s=seq,
                    duration_s=1.0,
                    sent=460,
                    status_codes={"200": 450, "503": 2},
                    errors={"timeout": 1},
                )
            )
        view.update(_figures(), {"corrected": summary, "uncorrected": summary, "schedule_lag": summary})
        with urllib.request.urlopen(f"http://127.0.0.1:{view.prometheus.port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
    finally:
        view.close()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted({"run_id": "live-run", **labels}.items())))]

    assert value("meshload_requests_sent_total", worker="w1") == 920
    assert value("meshload_responses_total", worker="w1", code="503") == 4
    assert value("meshload_request_errors_total", worker="w1", kind="timeout") == 2
    assert value("meshload_request_errors_total", worker="w1", kind="reset") == 0  # every kind from 0
    assert value("meshload_failed_requests_total", worker="w1") == 6
    assert value("meshload_latency_seconds", latency="corrected", quantile="0.99") == 0.009
    assert value("meshload_latency_seconds_count", latency="uncorrected") == 900
    assert value("meshload_schedule_lag_seconds", quantile="0.5") == 0.00125
    assert value("meshload_workers", state="alive") == 2 and value("meshload_workers", state="lost") == 1
    assert "python_gc" not in text  # its own registry: only the run's figures


def test_strict_turns_invalid_and_degraded_runs_into_exit_code_1() -> None:
    from test_coordinator_pipeline import make_record

    from meshload.cli.run_outcome import exit_code_for, summary_table
    from meshload.results.aggregate import RunAggregator
    from meshload.scenarios.plan import OpenLoop, Plan, Target

    plan = Plan(targets=(Target(url="http://127.0.0.1:9/"),), load=OpenLoop(rate=200), duration_s=2)
    healthy = RunAggregator(plan, "r1")
    for worker_id in ("w0", "w1"):
        for seq in range(2):
            healthy.add(make_record(worker_id, seq, final=seq == 1))
    valid = healthy.result()
    assert valid.valid and not valid.degraded, valid.validity
    assert exit_code_for(valid, strict=True) == 0 and exit_code_for(valid, strict=False) == 0

    healthy.mark_lost("w1")
    degraded = healthy.result()
    assert degraded.degraded
    assert exit_code_for(degraded, strict=True) == 1 and exit_code_for(degraded, strict=False) == 0
    assert "LOST" in summary_table(degraded) and "(degraded)" in summary_table(degraded)

    empty = RunAggregator(plan, "r2").result()
    assert not empty.valid
    assert exit_code_for(empty, strict=True) == 1
    assert "valid     NO" in summary_table(empty)


def test_a_scenario_file_takes_the_command_line_values_as_overrides(tmp_path) -> None:
    from meshload.cli.run_plan import build_plan
    from meshload.errors import PlanError, UsageError
    from meshload.scenarios.plan import ClosedLoop, OpenLoop

    scenario = tmp_path / "plan.yaml"
    scenario.write_text("url: http://127.0.0.1:9/x\nload: {rate: 50}\nduration: 10s\nlabels: {function: mtls}\n")
    base: dict[str, Any] = {
        "url": None,
        "scenario": str(scenario),
        "rate": None,
        "concurrency": None,
        "duration": None,
        "warmup": None,
        "connections": None,
        "arrival": None,
        "method": None,
        "headers": [],
        "body": None,
        "timeout": None,
        "labels": [],
    }
    plan = build_plan(**base)
    assert isinstance(plan.load, OpenLoop) and plan.load.rate == 50 and plan.duration_s == 10
    plan = build_plan(
        **{
            **base,
            "rate": 120.0,
            "duration": "1m30s",
            "arrival": "poisson",
            "warmup": "5s",
            "headers": ["X-Run: 7"],
            "labels": ["level=high"],
            "timeout": "250ms",
        }
    )
    assert isinstance(plan.load, OpenLoop)
    assert plan.load.rate == 120 and plan.load.arrival == "poisson"
    assert plan.duration_s == 90 and plan.warmup_s == 5 and plan.timeout_s == 0.25
    assert plan.headers["X-Run"] == "7" and plan.labels == {"function": "mtls", "level": "high"}
    plan = build_plan(**{**base, "concurrency": 4})
    assert isinstance(plan.load, ClosedLoop) and plan.load.concurrency == 4
    scenario.write_text("targets: [{url: /productpage}]\nload: {rate: 50}\nduration: 10s\n")
    plan = build_plan(**{**base, "url": "http://127.0.0.1:9/", "labels": ["smp.function=mtls"]})
    assert plan.targets[0].url == "http://127.0.0.1:9/productpage"  # the URL is the scenario's base
    assert plan.labels == {"smp.function": "mtls"}
    with pytest.raises(UsageError, match="--rate and --concurrency"):
        build_plan(**{**base, "rate": 5.0, "concurrency": 2})
    scenario.write_text("url: http://127.0.0.1:9/x\nload: {rate: -5}\nduration: 10s\n")
    with pytest.raises(PlanError, match=r"plan.yaml:2: load.rate"):
        build_plan(**base)
