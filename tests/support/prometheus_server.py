"""A real Prometheus server (Debian's `prometheus`) for tests: its own configuration and data folder, a
free loopback port, a short scrape interval, stopped (and reaped) on exit. The machine's own
Prometheus service, if any, is left alone.

    with PrometheusServer(targets=["127.0.0.1:9100"], scrape_interval_s=1.0) as prometheus:
        prometheus.wait_scraped(2)
        requests to prometheus.url
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Self

from tests.support.redis_server import free_port

START_TIMEOUT_S = 30.0


class PrometheusServer:
    def __init__(self, targets: list[str], scrape_interval_s: float = 1.0, job: str = "cadvisor") -> None:
        if shutil.which("prometheus") is None:
            raise RuntimeError("prometheus is not installed (apt-get install prometheus; scripts/install-deps)")
        self.targets = targets
        self.scrape_interval_s = scrape_interval_s
        self.job = job
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._folder = Path(tempfile.mkdtemp(prefix="meshload-prometheus-"))
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        interval = f"{int(self.scrape_interval_s * 1000)}ms"
        config = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "scrape_configs": [{"job_name": self.job, "static_configs": [{"targets": self.targets}]}],
        }
        config_path = self._folder / "prometheus.yml"
        config_path.write_text(json.dumps(config))  # YAML is a superset of JSON
        log = open(self._folder / "prometheus.log", "wb")
        self._process = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config_path}",
                f"--storage.tsdb.path={self._folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1.0) as response:
                    if response.status == 200:
                        return self
            except OSError:
                pass
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError(f"prometheus did not start: {self.log_tail()}")
            time.sleep(0.1)

    def query(self, promql: str) -> list[dict]:
        address = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        with urllib.request.urlopen(address, timeout=5.0) as response:
            return json.load(response)["data"]["result"]

    def wait_scraped(self, scrapes: int = 2, timeout_s: float = 30.0) -> None:
        """Wait until every target has been scraped successfully `scrapes` times in a row."""
        deadline = time.monotonic() + timeout_s
        window = f"{int(self.scrape_interval_s * 1000 * (scrapes + 0.5))}ms"
        while time.monotonic() < deadline:
            found = self.query(f'count_over_time(up{{job="{self.job}"}}[{window}]) >= {scrapes}')
            healthy = self.query(f'up{{job="{self.job}"}} == 1')
            if len(found) == len(self.targets) and len(healthy) == len(self.targets):
                return
            time.sleep(self.scrape_interval_s / 2)
        raise RuntimeError(f"prometheus did not scrape {self.targets} in {timeout_s:g}s: {self.log_tail()}")

    def log_tail(self) -> str:
        try:
            return (self._folder / "prometheus.log").read_text()[-2000:]
        except OSError:
            return "(no log)"

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        shutil.rmtree(self._folder, ignore_errors=True)
