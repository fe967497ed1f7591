"""From a real engine run against a real loopback server to the run's folder and back."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

from meshload.results.aggregate import RunAggregator
from meshload.results.outputs import load_run_result, write_run_outputs
from meshload.scenarios.plan import Plan
from meshload.worker.standalone import collect_records

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
SLOW_EVERY = 10  # every tenth request answers 503 after a short delay
RATE = 150.0
WARMUP_S = 0.5
DURATION_S = 2.0


class LoopbackServer:
    """A keep-alive HTTP/1.1 server on 127.0.0.1 (asyncio streams, in its own thread)."""

    def __init__(self) -> None:
        self.port = 0
        self.requests = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        assert self._ready.wait(10), "the loopback server did not start"
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()
        self._loop.run_until_complete(server.wait_closed())
        self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if not head:
                    break
                self.requests += 1
                if self.requests % SLOW_EVERY == 0:
                    await asyncio.sleep(0.005)
                    writer.write(RESPONSE.replace(b"200 OK", b"503 Service Unavailable"))
                else:
                    writer.write(RESPONSE)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as running:
        yield running


@pytest.mark.timeout(60)
def test_engine_records_become_consistent_outputs(server: LoopbackServer, tmp_path: Path) -> None:
    plan = Plan(
        name="loopback",
        targets=[{"url": f"http://127.0.0.1:{server.port}/productpage"}],
        load={"kind": "open", "rate": RATE},
        duration_s=DURATION_S,
        warmup_s=WARMUP_S,
        timeout_s=2.0,
    )
    records, _ = collect_records(plan, workers=1, run_id="e2e")
    aggregator = RunAggregator(plan, "e2e")
    for record in records:
        assert aggregator.add(record)
    result = aggregator.result(environment={"hostname": "test", "cpu_cores": 2})

    planned = RATE * (WARMUP_S + DURATION_S)
    assert result.completed + result.warmup_completed == pytest.approx(planned, abs=2)
    assert result.corrected.total_count == result.completed
    assert result.status_codes.get("503", 0) >= result.completed // SLOW_EVERY - 2
    assert result.timeseries and any(point.warmup for point in result.timeseries)
    assert result.measured_s == pytest.approx(DURATION_S, abs=0.05)

    paths = write_run_outputs(result, tmp_path / "run")
    smp = json.loads(paths["smp"].read_text())
    fortio = json.loads(paths["fortio"].read_text())
    assert smp["meshload"]["requests"] == result.completed == fortio["DurationHistogram"]["Count"]
    assert sum(fortio["RetCodes"].values()) == result.completed + result.error_count
    assert smp["result"]["latencies_ms"]["p99"] == result.corrected.value_at_percentile(99) / 1000.0

    reader = HistogramLogReader(str(paths["hlog"]), HdrHistogram(1, 2 * 3600 * 1_000_000, 3))
    total_corrected = 0
    while (histogram := reader.get_next_interval_histogram()) is not None:
        if histogram.get_tag().endswith(".corrected"):
            total_corrected += histogram.get_total_count()
    reader.close()
    assert total_corrected == result.completed + result.warmup_completed

    back = load_run_result(tmp_path / "run")
    assert back.corrected.encode() == result.corrected.encode()
    assert back.valid == result.valid and back.validity == result.validity
