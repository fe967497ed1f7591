"""smp.json as a protobuf-based SMP reader parses it: every part strictly, with SMP v0.6.1's messages
compiled from the spec's field list (tests/results/smp_proto/), for a merged result, a real run and
(in tests/study) a study cell."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.support.smp_proto import parse_smp_document

from meshload.results.run_result import RunResult
from meshload.results.smp import smp_document


def test_every_part_of_the_document_parses_strictly(finished_result: RunResult) -> None:
    document = json.loads(json.dumps(smp_document(finished_result)))
    parsed = parse_smp_document(document)

    result = parsed["result"]
    # google.protobuf.Timestamp in the JSON mapping: an RFC 3339 string, to the millisecond we have.
    assert document["result"]["start_time"].endswith("Z")
    start = datetime.fromtimestamp(finished_result.started_unix_ms / 1000, tz=UTC)
    assert result.start_time.ToDatetime(tzinfo=UTC) == start
    assert result.end_time.ToMilliseconds() == finished_result.ended_unix_ms
    assert result.latencies_ms.p99 == document["result"]["latencies_ms"]["p99"] > 0
    assert result.test_id == parsed["config"].id and result.env_id == parsed["env"].id
    config = parsed["config"]
    assert len(config.clients) == 3 and config.clients[0].rps == 100 and config.clients[0].protocol == 1
    mesh = parsed["mesh_config"]
    assert mesh.mesh_type.type == 3 and mesh.sidecar.cpu_mcores == 183 and mesh.mtls_enabled
    assert parsed["env"].nodes[0].mem_mb == 7936


def test_a_real_runs_smp_json_parses_strictly(http_server: Callable, tmp_path: Path) -> None:
    server = http_server("ok")
    out = tmp_path / "run"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MESHLOAD_")}
    completed = subprocess.run(
        [sys.executable, "-m", "meshload", "run", server.url, "--rate", "40", "--duration", "1s", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=90,
        env=environment,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    document = json.loads((out / "smp.json").read_text())
    parsed = parse_smp_document(document)
    assert parsed["result"].actual_qps > 0
    assert parsed["result"].end_time.ToNanoseconds() > parsed["result"].start_time.ToNanoseconds()
    assert parsed["config"].clients[0].endpoint_urls == [server.url]
    assert document["meshload"]["requests"] == server.counters()["requests"]  # the extension block is kept


def test_a_document_with_a_field_smp_does_not_have_is_rejected(finished_result: RunResult) -> None:
    from google.protobuf.json_format import ParseError

    document = json.loads(json.dumps(smp_document(finished_result)))
    document["env"]["nodes"][0]["hostname"] = "x"
    with pytest.raises(ParseError, match="hostname"):
        parse_smp_document(document)
