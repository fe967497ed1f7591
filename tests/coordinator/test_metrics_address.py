"""`--metrics-address`: the live figures listen where they are told (0.0.0.0 in a pod, so that the
cluster's Prometheus reaches them), and on loopback by default."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from meshload.coordinator.live import LiveView


def _scrape(host: str, port: int) -> str:
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as reply:
        return str(reply.read().decode())


def test_the_metrics_endpoint_listens_on_the_address_given_and_only_there() -> None:
    view = LiveView(workers_total=1, run_id="addr", show=False, metrics_port=0, metrics_address="127.0.0.2")
    try:
        assert view.prometheus is not None
        port = view.prometheus.port
        assert "# TYPE meshload_requests_sent_total counter" in _scrape("127.0.0.2", port)
        with pytest.raises(urllib.error.URLError):
            _scrape("127.0.0.1", port)  # another loopback address: nothing listens there
    finally:
        view.close()
    default = LiveView(workers_total=1, run_id="addr", show=False, metrics_port=0)
    try:
        assert default.prometheus is not None
        assert "# TYPE meshload_requests_sent_total counter" in _scrape("127.0.0.1", default.prometheus.port)
    finally:
        default.close()
