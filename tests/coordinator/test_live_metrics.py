"""meshload's own live metrics as Prometheus users expect them, scraped during real runs (real workers,
a real HTTP server) and parsed with prometheus_client's parser: counters named `_total` per worker,
latency quantiles as one summary with `quantile` and `latency` labels, schedule lag, errors by kind."""

from __future__ import annotations

import contextlib
import threading
import urllib.request
from collections import defaultdict

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.support.redis_server import free_port

from meshload.coordinator.run import RunOptions, execute_run
from meshload.results.interval import ERROR_KINDS
from meshload.scenarios.plan import OpenLoop, Plan, Target

pytestmark = pytest.mark.timeout(120)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> tuple[dict[str, str], Samples]:
    """{family name: type} and {(sample name, labels): value} of one scrape."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as reply:
        text = reply.read().decode()
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return types, samples


class Scraper:
    """Scrapes the run's endpoint every `every_s` on a thread until stopped; keeps every scrape."""

    def __init__(self, port: int, every_s: float = 0.2) -> None:
        self.port = port
        self.every_s = every_s
        self.scrapes: list[tuple[dict[str, str], Samples]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Scraper:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            with contextlib.suppress(OSError):  # before the endpoint is up, or after it is closed
                self.scrapes.append(scrape(self.port))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def by_name(samples: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: value for (sample, labels), value in samples.items() if sample == name}


def test_a_scrape_during_a_real_run_follows_prometheus_conventions(http_server) -> None:
    port = free_port()
    plan = Plan(targets=(Target(url=http_server.url),), load=OpenLoop(rate=200), duration_s=3.0, warmup_s=0.5)
    with Scraper(port) as scraper:
        result = execute_run(plan, RunOptions(workers=2, live=False, metrics_port=port))
    assert len(scraper.scrapes) >= 5, "the endpoint was not up during the run"
    types, last = scraper.scrapes[-1]
    run = result.run_id

    for counter in ("requests_sent", "responses", "request_errors", "failed_requests", "sends_late", "sends_missed"):
        assert types[f"meshload_{counter}"] == "counter"  # the parser names a counter family without `_total`
        assert by_name(last, f"meshload_{counter}_total"), counter
    assert types["meshload_latency_seconds"] == "summary" and types["meshload_schedule_lag_seconds"] == "summary"

    # per-worker counters, one series per worker, and they only grow
    workers = {worker.id for worker in result.workers}
    sent = by_name(last, "meshload_requests_sent_total")
    assert {dict(labels)["worker"] for labels in sent} == workers and len(workers) == 2
    assert all(dict(labels)["run_id"] == run for labels in sent)
    series: dict[tuple, list[float]] = defaultdict(list)
    for _, samples in scraper.scrapes:
        for key, value in samples.items():
            if key[0].endswith("_total"):
                series[key].append(value)
    assert all(values == sorted(values) for values in series.values())
    answered = http_server.counters()["requests"]
    ok = sum(by_name(last, "meshload_responses_total").values())
    assert 0 < ok <= answered and all(
        dict(labels)["code"] == "200" for labels in by_name(last, "meshload_responses_total")
    )

    # errors by kind: every kind present for every worker, all 0 against a healthy server
    errors = by_name(last, "meshload_request_errors_total")
    assert {(dict(labels)["worker"], dict(labels)["kind"]) for labels in errors} == {
        (worker, kind) for worker in workers for kind in ERROR_KINDS
    }
    assert not any(errors.values())

    # latency quantiles: one metric, corrected and uncorrected as a label, quantiles in order
    latency = by_name(last, "meshload_latency_seconds")
    for kind in ("corrected", "uncorrected"):
        quantiles = {
            float(dict(labels)["quantile"]): v for labels, v in latency.items() if dict(labels)["latency"] == kind
        }
        assert sorted(quantiles) == [0.5, 0.9, 0.99, 0.999]
        values = [quantiles[q] for q in sorted(quantiles)]
        assert 0 < values[0] <= values[-1] < 1.0 and values == sorted(values)
        count = by_name(last, "meshload_latency_seconds_count")[(("latency", kind), ("run_id", run))]
        assert 0 < count <= ok
    lag = by_name(last, "meshload_schedule_lag_seconds")
    assert sorted(float(dict(labels)["quantile"]) for labels in lag) == [0.5, 0.9, 0.99, 0.999]
    assert by_name(last, "meshload_workers")[(("run_id", run), ("state", "alive"))] == 2
    assert by_name(last, "meshload_planned_seconds")[(("run_id", run),)] == pytest.approx(3.5)


def test_transport_errors_are_counted_by_kind(refused_url: str) -> None:
    port = free_port()
    plan = Plan(targets=(Target(url=refused_url),), load=OpenLoop(rate=50), duration_s=2.0)
    with Scraper(port, every_s=0.1) as scraper:
        result = execute_run(plan, RunOptions(workers=1, live=False, metrics_port=port))
    refused = [
        by_name(samples, "meshload_request_errors_total").get(
            (("kind", "connect_refused"), ("run_id", result.run_id), ("worker", result.workers[0].id)), 0.0
        )
        for _, samples in scraper.scrapes
    ]
    # a scrape during the run saw some of what the run counted in the end (no warm-up in this plan)
    assert 0 < max(refused) <= result.errors["connect_refused"]
    failed = max(sum(by_name(samples, "meshload_failed_requests_total").values()) for _, samples in scraper.scrapes)
    assert failed == max(refused)
