"""Live progress of a run: a rich Live line on an interactive stderr, a plain line every few seconds
otherwise, and optionally a Prometheus endpoint (its own registry) with the same figures."""

from __future__ import annotations

import time

from rich.live import Live
from rich.text import Text

from .. import terminal
from ..errors import UsageError
from ..results.aggregate import LiveFigures

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
    """The live figures as gauges on http://ADDRESS:PORT/metrics (port 0: any free port)."""

    def __init__(self, port: int, run_id: str, address: str = "127.0.0.1") -> None:
        from prometheus_client import CollectorRegistry, Gauge, start_http_server

        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["run_id"]

        def gauge(name: str, documentation: str) -> Gauge:
            return Gauge(name, documentation, labels, registry=self.registry).labels(run_id)

        self._elapsed = gauge("meshload_elapsed_seconds", "Seconds of the run covered by records so far")
        self._total = gauge("meshload_planned_seconds", "Warm-up plus measured duration of the plan")
        self._rate = gauge("meshload_rate_per_second", "Completed responses per second, last complete second")
        self._p50 = gauge("meshload_latency_p50_seconds", "Corrected latency p50 so far")
        self._p99 = gauge("meshload_latency_p99_seconds", "Corrected latency p99 so far")
        self._completed = gauge("meshload_completed_requests", "Responses received so far, warm-up included")
        self._errors = gauge("meshload_failed_requests", "Failed requests so far, warm-up included")
        self._alive = gauge("meshload_workers_alive", "Workers not lost")
        self._lost = gauge("meshload_workers_lost", "Workers lost during the run")
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

    def update(self, figures: LiveFigures) -> None:
        self._elapsed.set(figures.elapsed_s)
        self._total.set(figures.total_s)
        self._rate.set(figures.rate)
        self._p50.set(figures.p50_ms / 1000.0)
        self._p99.set(figures.p99_ms / 1000.0)
        self._completed.set(figures.completed)
        self._errors.set(figures.errors)
        self._alive.set(figures.workers_alive)
        self._lost.set(figures.workers_lost)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


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

    def update(self, figures: LiveFigures) -> None:
        if self.prometheus is not None:
            self.prometheus.update(figures)
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
