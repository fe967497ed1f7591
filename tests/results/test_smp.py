"""The SMP document: the contracted keys, real milliseconds, linked ids, Go-readable JSON types."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from tests.support.run_checks import MESHLOAD_KEYS

from meshload.results.histogram import LatencyHistogram
from meshload.results.run_result import RunResult
from meshload.results.smp import MESH_TYPES, SMP_VERSION, go_duration, rfc3339, smp_document
from meshload.scenarios.plan import ClosedLoop

PERCENTILE_KEYS = {"50", "90", "99", "99.9", "99.99"}


def test_document_has_every_contracted_part(finished_result: RunResult) -> None:
    document = json.loads(json.dumps(smp_document(finished_result)))

    assert set(document) >= {"config", "result", "mesh_config", "env", "meshload"}
    config, result, mesh, env = (document[k] for k in ("config", "result", "mesh_config", "env"))
    for part in (config, result, mesh, env):
        assert part["smp_version"] == SMP_VERSION == "v0.6.1"
    assert set(config) >= {"id", "name", "labels", "clients", "duration"}
    assert config["duration"] == "4s"
    assert set(result) >= {
        "id",
        "labels",
        "start_time",
        "end_time",
        "latencies_ms",
        "actual_qps",
        "test_id",
        "mesh_config_id",
        "env_id",
    }
    assert set(result["latencies_ms"]) == {"min", "average", "p50", "p90", "p99", "max"}
    assert result["start_time"] == rfc3339(finished_result.started_unix_ms) and result["start_time"].endswith(".000Z")
    # The study cell is in the labels (SMP has no field for it), as strings.
    for key, value in {"function": "retries", "load_level": "300", "repetition": "2", "mesh": "istio"}.items():
        assert result["labels"][key] == value
    assert all(isinstance(v, str) for v in result["labels"].values())

    block = document["meshload"]
    assert set(block) >= MESHLOAD_KEYS | {"plan"}
    assert block["requests"] == finished_result.completed == 1200
    assert block["status_codes"] == {"200": 1195, "503": 5}
    assert block["errors"] == {"reset": 2, "timeout": 1}
    assert (
        set(block["percentiles_ms"])
        == set(block["uncorrected_percentiles_ms"])
        == set(block["schedule_lag_ms"])
        == PERCENTILE_KEYS
    )
    assert LatencyHistogram.decode(block["histogram"]).total_count == 1200
    assert [w["id"] for w in block["workers"]] == ["worker 1,odd", "worker-0", "worker-2"]
    for worker in block["workers"]:
        assert set(worker) >= {"id", "requests", "cpu_seconds", "clock_offset_ms", "lost"}
        assert worker["lost"] is False and worker["requests"] == 400
    assert block["valid"] is True and block["validity"] == []
    assert len(block["timeseries"]) == 5
    assert set(block["timeseries"][1]) >= {"offset_s", "rate", "errors", "p50_ms", "p99_ms"}
    assert block["timeseries"][2]["errors"] == 8  # 5 responses 503 + 3 transport errors in second 2


def test_latencies_are_real_milliseconds(finished_result: RunResult) -> None:
    latencies = smp_document(finished_result)["result"]["latencies_ms"]
    block = smp_document(finished_result)["meshload"]
    corrected = finished_result.corrected

    assert latencies["p50"] == corrected.value_at_percentile(50) / 1000.0
    assert latencies["p90"] == corrected.value_at_percentile(90) / 1000.0
    assert latencies["p99"] == corrected.value_at_percentile(99) / 1000.0
    assert latencies["min"] == corrected.min_us / 1000.0
    assert latencies["max"] == corrected.max_us / 1000.0
    assert latencies["average"] == pytest.approx(corrected.mean_us() / 1000.0)
    # The samples have a ~3 ms median: a seconds or microseconds mix-up would be off by 1000x.
    assert 1.0 < latencies["p50"] < 10.0
    assert block["percentiles_ms"]["99.9"] == corrected.value_at_percentile(99.9) / 1000.0
    assert block["uncorrected_percentiles_ms"]["50"] == finished_result.uncorrected.value_at_percentile(50) / 1000.0


def test_ids_are_real_uuids_that_link_the_documents(finished_result: RunResult) -> None:
    document = smp_document(finished_result)
    ids = {part: document[part]["id"] for part in ("config", "result", "mesh_config", "env")}

    for value in ids.values():
        assert uuid.UUID(value).version == 5
    assert len(set(ids.values())) == 4
    assert document["result"]["test_id"] == ids["config"]
    assert document["result"]["mesh_config_id"] == ids["mesh_config"]
    assert document["result"]["env_id"] == ids["env"]
    assert smp_document(finished_result)["result"]["id"] == ids["result"]  # stable when rendered again


def test_go_readable_types_clients_mesh_and_env(finished_result: RunResult) -> None:
    document = smp_document(finished_result)
    text = json.dumps(document)

    clients = document["config"]["clients"]
    assert len(clients) == 3  # one SMP client per worker
    for client in clients:
        assert client["protocol"] == 1 and isinstance(client["protocol"], int)  # enum as integer
        assert client["rps"] == 100 and type(client["rps"]) is int  # int64 as a JSON number
        assert client["load_generator"] == "meshload"
        assert client["endpoint_urls"] == ["http://127.0.0.1:9/productpage"]
    assert re.search(r'"rps": 100\b', text) and '"rps": "' not in text
    assert '"mem_mb": "' not in text and '"cores": "' not in text

    mesh = document["mesh_config"]
    assert mesh["mesh_type"] == {"type": MESH_TYPES["istio"], "version": "1.22.3"} and mesh["mesh_type"]["type"] == 3
    assert mesh["sidecar"] == {"count": 4, "cpu_mcores": 183, "mem_mb": 96}
    assert mesh["ingress_gateway"]["cpu_mcores"] == 75 and mesh["ingress_gateway"]["rps"] == 300
    assert mesh["mesh_control_plane"] == {"count": 1, "cpu_mcores": 12, "mem_mb": 151}
    assert mesh["mtls_enabled"] is True and mesh["profile"] == "retries"

    env = document["env"]
    assert env["nodes"] == [{"type": "loadgen-1", "cores": 2, "mem_mb": 7936}]
    assert env["kubernetes_version"] == "v1.30.2"
    assert env["individual_workloads"][0] == {"name": "applications", "count": 6, "cpu_mcores": 310, "mem_mb": 420}


def test_closed_loop_clients_split_the_concurrency(finished_result: RunResult) -> None:
    finished_result.plan = finished_result.plan.model_copy(update={"load": ClosedLoop(concurrency=8)})
    clients = smp_document(finished_result)["config"]["clients"]
    assert [c["connections"] for c in clients] == [3, 3, 2]
    assert all(c["rps"] == 0 for c in clients)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(30, "30s"), (90, "1m30s"), (3600, "1h0m0s"), (0.25, "250ms"), (1.5, "1.5s"), (0, "0s"), (3723.5, "1h2m3.5s")],
)
def test_go_duration_strings(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_cell_labels_are_always_present(finished_result: RunResult) -> None:
    finished_result.labels = {"study": "s1", "function": "timeouts", "load_rps": "250", "repetition": "3"}
    labels = smp_document(finished_result)["result"]["labels"]
    assert (labels["function"], labels["load_level"], labels["repetition"]) == ("timeouts", "250", "3")

    finished_result.labels, finished_result.mesh = {}, None
    finished_result.plan = finished_result.plan.model_copy(update={"load": ClosedLoop(concurrency=8)})
    labels = smp_document(finished_result)["config"]["labels"]
    assert (labels["function"], labels["load_level"], labels["repetition"]) == ("none", "concurrency=8", "1")
