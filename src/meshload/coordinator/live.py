"""Live progress of a run: a rich Live line on an interactive stderr, a plain line every few seconds
otherwise, and optionally a Prometheus endpoint (its own registry) with the run's counters, latency
summaries and progress (`PrometheusLive`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from rich.live import Live
from rich.text import Text

from .. import terminal
from ..errors import UsageError
from ..results.aggregate import failed_requests
from ..results.interval import ERROR_KINDS, IntervalRecord
from ..results.live_figures import LatencySummary, LiveFigures

if TYPE_CHECKING:
    from prometheus_client.core import Metric

#: Non-interactive output: one plain progress line this often.
PLAIN_EVERY_S = 5.0
#: Interactive output is redrawn at most this often.
REFRESH_PER_S = 4


def progress_line(figures: LiveFigures, workers_total: int) -> str:
    """One line: elapsed/total, rate, p50/p99 so far, errors, workers alive."""
    phase = " warm-up" if figures.in_warmup else ""
    lost = f" ({figures.workers_lost} lost)" if figures.workers_lost else ""
    return (
        f"{figures.elapsed_s:5.1f}s/{figures.total_s:g}s{phase}  "
        f"rate {figures.rate:,.0f}/s  p50 {figures.p50_ms:.2f} ms  p99 {figures.p99_ms:.2f} ms  "
        f"errors {figures.errors:,}  workers {figures.workers_alive}/{workers_total}{lost}"
    )


class PrometheusLive:
    """The run as Prometheus users expect it, on http://ADDRESS:PORT/metrics (port 0: any free port),
    in its own registry; every series carries `run_id`:

        meshload_requests_sent_total{worker}            counters, warm-up included, per worker
        meshload_responses_total{worker, code}          by HTTP status or gRPC status name
        meshload_request_errors_total{worker, kind}     transport errors by kind (connect_refused, timeout, ...)
        meshload_failed_requests_total{worker}          transport errors plus failed statuses (>= 400, not OK)
        meshload_sends_late_total{worker}, meshload_sends_missed_total{worker}
        meshload_worker_cpu_seconds_total{worker}, meshload_worker_spin_seconds_total{worker}
        meshload_latency_seconds{latency="corrected"|"uncorrected", quantile}   summaries of the measured
        meshload_schedule_lag_seconds{quantile}                                 part (warm-up while in it)
        meshload_elapsed_seconds, meshload_planned_seconds, meshload_warmup (1 in the warm-up)
        meshload_workers{state="alive"|"lost"|"finished"}

    Counters are fed record by record (`record`), the rest at each `update`; a scrape reads a copy
    taken under a lock, so it never sees a half-merged record.
    """

    def __init__(self, port: int, run_id: str, address: str = "127.0.0.1") -> None:
        from prometheus_client import CollectorRegistry, start_http_server

        self.run_id = run_id
        self._lock = threading.Lock()
        self._counters: dict[str, dict[tuple[str, ...], float]] = {name: {} for name, _, _ in _COUNTERS}
        self._workers_seen: set[str] = set()
        self._figures: LiveFigures | None = None
        self._summaries: dict[str, LatencySummary] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_LiveCollector(self))
        try:
            self._server, self._thread = start_http_server(port, addr=address, registry=self.registry)
        except OSError as exc:
            raise UsageError(
                f"--metrics-port {port}: cannot listen on {address}:{port} ({exc.strerror}); choose another "
                "port, or 0 for any free one"
            ) from exc

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def record(self, record: IntervalRecord) -> None:
        """Count one merged record (each record once: the aggregator already refused duplicates)."""
        worker = record.worker_id
        with self._lock:
            counters = self._counters
            if worker not in self._workers_seen:  # every error kind from 0, so rate() sees the first one
                self._workers_seen.add(worker)
                for kind in ERROR_KINDS:
                    counters["request_errors"].setdefault((worker, kind), 0.0)
            _add(counters["requests_sent"], (worker,), record.sent)
            for code, count in record.status_codes.items():
                _add(counters["responses"], (worker, code), count)
            for kind, count in record.errors.items():
                _add(counters["request_errors"], (worker, kind), count)
            _add(counters["failed_requests"], (worker,), failed_requests(record.status_codes, record.errors))
            _add(counters["sends_late"], (worker,), record.late)
            _add(counters["sends_missed"], (worker,), record.missed)
            _add(counters["worker_cpu_seconds"], (worker,), record.cpu_seconds)
            _add(counters["worker_spin_seconds"], (worker,), record.spin_seconds)

    def update(self, figures: LiveFigures, summaries: dict[str, LatencySummary] | None = None) -> None:
        with self._lock:
            self._figures = figures
            if summaries is not None:
                self._summaries = summaries

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _families(self) -> list[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

        with self._lock:
            counters = {name: dict(values) for name, values in self._counters.items()}
            figures, summaries = self._figures, dict(self._summaries)
        run = self.run_id
        families: list[Metric] = []
        for name, labels, documentation in _COUNTERS:
            family = CounterMetricFamily(f"meshload_{name}", documentation, labels=["run_id", *labels])
            for key, value in sorted(counters[name].items()):
                family.add_metric([run, *key], value)
            families.append(family)
        latency = Metric("meshload_latency_seconds", "Response latency so far (measured part)", "summary")
        for kind in ("corrected", "uncorrected"):
            _add_summary(latency, summaries.get(kind), {"run_id": run, "latency": kind})
        lag = Metric("meshload_schedule_lag_seconds", "Actual send minus planned instant so far", "summary")
        _add_summary(lag, summaries.get("schedule_lag"), {"run_id": run})
        families += [latency, lag]
        if figures is not None:
            gauges = (
                ("meshload_elapsed_seconds", "Seconds of the run covered by records so far", figures.elapsed_s),
                ("meshload_planned_seconds", "Warm-up plus measured duration of the plan", figures.total_s),
                ("meshload_warmup", "1 while no measured record has arrived yet", float(figures.in_warmup)),
            )
            for name, documentation, value in gauges:
                gauge = GaugeMetricFamily(name, documentation, labels=["run_id"])
                gauge.add_metric([run], value)
                families.append(gauge)
            workers = GaugeMetricFamily("meshload_workers", "Workers by state", labels=["run_id", "state"])
            workers.add_metric([run, "alive"], figures.workers_alive)
            workers.add_metric([run, "lost"], figures.workers_lost)
            workers.add_metric([run, "finished"], figures.workers_finished)
            families.append(workers)
        return families


# (name without meshload_ and _total, labels besides run_id, help)
_COUNTERS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("requests_sent", ("worker",), "Requests written to a connection, warm-up included"),
    ("responses", ("worker", "code"), "Responses received by HTTP status or gRPC status, warm-up included"),
    ("request_errors", ("worker", "kind"), "Requests that ended in a transport error, by kind"),
    ("failed_requests", ("worker",), "Transport errors plus failed statuses (HTTP >= 400, gRPC not OK)"),
    ("sends_late", ("worker",), "Sends whose schedule lag exceeded the late threshold"),
    ("sends_missed", ("worker",), "Planned sends never made"),
    ("worker_cpu_seconds", ("worker",), "User plus system CPU of the worker process"),
    (
        "worker_spin_seconds",
        ("worker",),
        "Of the worker's CPU, polling for planned instants too near to sleep for (waiting, not load)",
    ),
)


def _add(values: dict[tuple[str, ...], float], key: tuple[str, ...], amount: float) -> None:
    values[key] = values.get(key, 0.0) + amount


def _add_summary(metric: Metric, summary: LatencySummary | None, labels: dict[str, str]) -> None:
    if summary is None:
        return
    for quantile, seconds in summary.quantiles.items():
        metric.add_sample(metric.name, {**labels, "quantile": f"{quantile:g}"}, seconds)
    metric.add_sample(f"{metric.name}_count", labels, float(summary.count))
    metric.add_sample(f"{metric.name}_sum", labels, summary.sum_s)


class _LiveCollector:
    def __init__(self, live: PrometheusLive) -> None:
        self._live = live

    def collect(self) -> Iterable[Metric]:
        return self._live._families()


class LiveView:
    """`update(figures)` as often as convenient; it decides what to draw and when."""

    def __init__(
        self,
        *,
        workers_total: int,
        run_id: str,
        show: bool = True,
        metrics_port: int | None = None,
        metrics_address: str = "127.0.0.1",
    ) -> None:
        self.workers_total = workers_total
        self._show = show
        self._live: Live | None = None
        self._next_plain_s = time.monotonic() + PLAIN_EVERY_S
        self.prometheus = PrometheusLive(metrics_port, run_id, metrics_address) if metrics_port is not None else None
        if show and terminal.interactive():
            self._live = Live(
                Text("starting..."), console=terminal.stderr, refresh_per_second=REFRESH_PER_S, transient=True
            )
            self._live.start()

    @property
    def wants_summaries(self) -> bool:
        """Whether `update` should be given latency summaries (they cost a few percentile passes)."""
        return self.prometheus is not None

    def record(self, record: IntervalRecord) -> None:
        """One merged record, for the endpoint's counters."""
        if self.prometheus is not None:
            self.prometheus.record(record)

    def update(self, figures: LiveFigures, summaries: dict[str, LatencySummary] | None = None) -> None:
        if self.prometheus is not None:
            self.prometheus.update(figures, summaries)
        if not self._show:
            return
        line = progress_line(figures, self.workers_total)
        if self._live is not None:
            self._live.update(Text(line))
        elif time.monotonic() >= self._next_plain_s:
            self._next_plain_s = time.monotonic() + PLAIN_EVERY_S
            terminal.info(line)

    def note(self, message: str) -> None:
        """A lasting message (a worker lost, Redis unreachable) above the live line."""
        if not self._show:
            return
        if self._live is not None:
            self._live.console.print(f"warning: {message}", style="yellow")
        else:
            terminal.warning(message)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        if self.prometheus is not None:
            self.prometheus.close()
            self.prometheus = None
