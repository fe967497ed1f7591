"""Real Locust with the plugin against real servers on loopback: headless, master with two workers in
their own processes, and `--processes`. meshload's merged request count is Locust's own total, the
reports pass the checks every `meshload run` folder passes, open loop splits one schedule across
workers, and on a server that stalls the corrected percentiles are the analytic truth while Locust's
own, shown beside them, are not."""

from __future__ import annotations

import re

import psutil
import pytest
from tests.support.run_checks import check_run_folder
from tests.support.stall_truth import stall_truth_ms

from .conftest import LOCUSTFILES, LocustRun, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]


def merged_requests(block: dict) -> int:
    """Requests in meshload's merged result as Locust counts them (planned-but-unsent ones are not)."""
    errors = sum(block["errors"].values()) - block["errors"].get("not_sent", 0)
    return block["requests"] + errors + block["warmup"]["completed"]


def assert_counts_agree(run: LocustRun, server_requests: int, users: int) -> dict:
    """meshload's count is exactly Locust's; the server saw those plus at most one in flight per user
    (Locust stops its users mid-request and counts nothing for them)."""
    assert run.returncode == 0, run.stderr[-3000:]
    smp = check_run_folder(run.out)
    block = smp["meshload"]
    locust_total = run.locust_total()
    assert merged_requests(block) == locust_total["requests"] > 50
    assert 0 <= server_requests - locust_total["requests"] <= users
    assert block["reference"]["requests"] == locust_total["requests"]
    assert block["reference"]["failures"] == locust_total["failures"] == 0
    assert set(block["reference"]["percentiles_ms"]) == {"50", "90", "99", "99.9", "99.99"}
    return block


def test_a_headless_run_records_exactly_what_locust_counts_and_writes_valid_reports(
    http_server, locust_launcher
) -> None:
    server = http_server("ok")
    run = locust_launcher.run(
        LOCUSTFILES / "closed_loop.py", "-u", "4", "-r", "100", "--host", server.url.rstrip("/"), run_time_s=3
    )
    block = assert_counts_agree(run, server.counters()["requests"], users=4)

    assert block["valid"] is True and block["validity"] == [], block["validity"]
    assert block["plan"]["load"] == {"kind": "closed", "concurrency": 4, "think_time_s": 0.0}
    assert [w["id"] for w in block["workers"]] == ["locust-0"]
    names = block["by_name"]
    assert set(names) == {"front", "item"}
    assert names["front"]["requests"] + names["item"]["requests"] == merged_requests(block)
    assert abs(names["front"]["requests"] - names["item"]["requests"]) <= 4  # one of each per task
    # Closed loop: measured from the actual send, and the report says so.
    assert block["percentiles_ms"] == block["uncorrected_percentiles_ms"]
    assert block["schedule_lag_ms"]["99.99"] == 0.0
    report = (run.out / "report.html").read_text()
    assert "Closed loop: 4 clients" in report and "not corrected for coordinated omission" in report
    assert "Locust 2." in report and 'id="names"' in report
    assert re.search(r"meshload: [\d,]+ responses, 0 errors; .* VALID; reports in ", run.stderr)


def test_a_master_with_two_worker_processes_merges_their_records_from_a_private_redis(
    http_server, locust_launcher
) -> None:
    server = http_server("ok")
    master_port = free_port()
    for _ in range(2):
        locust_launcher.start_worker(LOCUSTFILES / "closed_loop.py", master_port)
    run = locust_launcher.run(
        LOCUSTFILES / "closed_loop.py",
        "--master",
        "--master-bind-host",
        "127.0.0.1",
        "--master-bind-port",
        str(master_port),
        "--expect-workers",
        "2",
        "--expect-workers-max-wait",
        "40",
        "-u",
        "6",
        "-r",
        "100",
        "--host",
        server.url.rstrip("/"),
        run_time_s=4,
        name="master",
    )
    block = assert_counts_agree(run, server.counters()["requests"], users=6)

    assert block["valid"] is True and block["validity"] == [], block["validity"]
    workers = {w["id"]: w for w in block["workers"]}
    assert sorted(workers) == ["locust-0", "locust-1"]
    assert all(w["requests"] > 0 and not w["lost"] and w["records"] >= 3 for w in workers.values())
    assert sum(w["requests"] for w in workers.values()) == block["requests"]
    assert abs(workers["locust-0"]["clock_offset_ms"]) < 50
    # The master's private redis-server is gone with it, socket folder and all.
    folder = run.private_redis_folder()
    assert folder is not None and not folder.exists()
    assert not [p for p in psutil.process_iter(["cmdline"]) if str(folder) in " ".join(p.info["cmdline"] or [])]
    assert all(log == "" or "Traceback" not in log for log in locust_launcher.stop_all())


def test_open_loop_across_processes_takes_one_schedule_split_between_the_workers(http_server, locust_launcher) -> None:
    server = http_server("ok")
    rate = 100
    run = locust_launcher.run(
        LOCUSTFILES / "open_loop.py",
        "--meshload-warmup",
        "1s",  # the schedule starts 1 s after the test: the measured part is the schedule's
        "--processes",
        "2",
        "-u",
        "10",
        "-r",
        "100",
        "--host",
        server.url.rstrip("/"),
        run_time_s=4,
        OPEN_LOOP_RATE=str(rate),
    )
    block = assert_counts_agree(run, server.counters()["requests"], users=10)

    assert block["plan"]["load"] == {"kind": "open", "rate": 100.0, "arrival": "constant", "stages": []}
    # Every planned instant was either sent or counted as missed: the rate, all workers together. (Each
    # worker's part ends when that worker stops; they receive Locust's quit a little apart.)
    planned = block["sent"] + block["missed"]
    assert rate * (block["measured_s"] - 0.3) <= planned <= rate * block["measured_s"] + 1
    workers = {w["id"]: w for w in block["workers"]}
    assert sorted(workers) == ["locust-0", "locust-1"]
    # Constant arrivals interleave across the two workers: each took half the instants.
    for worker in workers.values():
        assert worker["sent"] + worker["errors"] == pytest.approx(planned / 2, rel=0.1)
    assert "Open loop: 100 requests/s, constant arrivals" in (run.out / "report.html").read_text()


def test_on_a_stalling_server_open_loop_percentiles_are_the_truth_and_locusts_are_not(
    http_server, locust_launcher
) -> None:
    """0.5 s stalls every 2 s, 40 tasks/s planned, 4 users: the users sit in the stalls, so Locust sends
    late and its own figures (from the actual send) miss the stalls; meshload's, from the planned
    instants, match the analytic truth (p90 300 ms, p99 480 ms over whole periods) within the engine
    tests' tolerance (15 %). The requests planned in a stall but sent after it, once a user is free,
    wait for the backlog of a few requests ahead of them: a few ms against stalls of hundreds."""
    stall_s, period_s = 0.5, 2.0
    server = http_server("stall", stall_period_s=period_s, stall_s=stall_s)
    run = locust_launcher.run(
        LOCUSTFILES / "open_loop.py",
        "--meshload-warmup",
        "1s",  # the schedule's lead: the measured window is exactly the span of the planned instants
        "-u",
        "4",
        "-r",
        "100",
        "--host",
        server.url.rstrip("/"),
        run_time_s=7,
        OPEN_LOOP_RATE="40",
    )
    served = server.counters()["requests"]
    block = assert_counts_agree(run, served, users=4)

    start_s, end_s = block["started_unix_ms"] / 1000, block["ended_unix_ms"] / 1000
    assert end_s - start_s > 5
    # A stop during a stall leaves its latest instants unsent (missed) or in flight (Locust counts
    # nothing for them): the measured requests were planned over the window less that tail.
    unsent = block["missed"] + served - merged_requests(block)
    assert unsent <= 20 + 4  # at most a stall's worth of instants (0.5 s at 40/s) and one per user
    end_s -= unsent / 40
    reference = block["reference"]["percentiles_ms"]
    for percentile in (90, 99):
        truth_ms = stall_truth_ms(percentile, start_s, end_s, stall_s, period_s)
        measured_ms = block["percentiles_ms"][str(percentile)]
        assert measured_ms == pytest.approx(truth_ms, rel=0.15), f"p{percentile}: truth {truth_ms:.1f} ms"
    assert reference["90"] < stall_truth_ms(90, start_s, end_s, stall_s, period_s) / 5  # coordinated omission
    # The generator says it fell behind (its users waited in the stalls), and how far.
    assert block["valid"] is False
    assert any("fell behind its schedule" in reason for reason in block["validity"])
    assert block["schedule_lag_ms"]["99"] > 100
    report = (run.out / "report.html").read_text()
    assert 'id="reference"' in report and "Open loop: 40 requests/s" in report


@pytest.mark.parametrize(
    ("option", "value", "message", "exit_code"),
    [
        ("--meshload-redis", "redis://127.0.0.1:{port}/0", "meshload: cannot reach Redis at redis://127.0.0.1:", 1),
        ("--meshload-warmup", "5x", 'meshload: --meshload-warmup: "5x" is not a duration', 2),
    ],
    ids=["unreachable-redis", "bad-warmup"],
)
def test_bad_plugin_options_stop_locust_with_one_line_before_any_load(
    http_server, locust_launcher, option, value, message, exit_code
) -> None:
    server = http_server("ok")
    run = locust_launcher.run(
        LOCUSTFILES / "closed_loop.py",
        "--master",
        "--master-bind-port",
        str(free_port()),
        "-u",
        "2",
        "--host",
        server.url.rstrip("/"),
        option,
        value.format(port=free_port()),
        run_time_s=2,
    )
    assert run.returncode == exit_code
    lines = [line for line in run.stderr.splitlines() if line.startswith("meshload:")]
    assert len(lines) == 1 and lines[0].startswith(message), run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert server.counters()["requests"] == 0
