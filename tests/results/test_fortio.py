"""fortio.json: Fortio's field names and units, as Meshery reads them."""

from __future__ import annotations

import itertools
import json

import pytest

from meshload.results.fortio import FORTIO_PERCENTILES, fortio_document
from meshload.results.run_result import RunResult
from meshload.scenarios.plan import ClosedLoop


def test_fortio_fields_and_units(finished_result: RunResult) -> None:
    document = json.loads(json.dumps(fortio_document(finished_result)))
    corrected = finished_result.corrected

    assert document["RunType"] == "HTTP"
    assert document["Labels"] == "results-test -_- http://127.0.0.1:9/productpage"
    assert document["URL"] == "http://127.0.0.1:9/productpage"
    assert document["StartTime"].endswith("Z") and document["StartTime"][10] == "T"
    assert document["RequestedQPS"] == "300"
    assert document["RequestedDuration"] == "4s"
    assert document["ActualDuration"] == 4_000_000_000 and isinstance(document["ActualDuration"], int)
    assert document["ActualQPS"] == pytest.approx(300.0)
    assert document["NumThreads"] > 0 and document["SocketCount"] > 0
    assert document["load-generator"] == "meshload"
    # Every outcome is in RetCodes: non-200 statuses and transport errors under Fortio's "-1".
    assert document["RetCodes"] == {"200": 1195, "503": 5, "-1": 3}

    histogram = document["DurationHistogram"]
    assert histogram["Count"] == corrected.total_count == 1200
    assert histogram["Avg"] == pytest.approx(corrected.mean_us() / 1e6)  # seconds, not ms
    assert histogram["Min"] == corrected.min_us / 1e6 and histogram["Max"] == corrected.max_us / 1e6
    assert histogram["Sum"] == pytest.approx(histogram["Avg"] * histogram["Count"])
    assert histogram["StdDev"] == pytest.approx(corrected.stddev_us() / 1e6)
    assert 0.001 < histogram["Avg"] < 0.01  # ~3 ms medians: seconds
    assert [p["Percentile"] for p in histogram["Percentiles"]] == [50, 75, 90, 99, 99.9] == list(FORTIO_PERCENTILES)
    for entry in histogram["Percentiles"]:
        assert entry["Value"] == corrected.value_at_percentile(entry["Percentile"]) / 1e6

    data = histogram["Data"]
    assert sum(bucket["Count"] for bucket in data) == 1200
    assert data[-1]["Percent"] == pytest.approx(100.0)
    percents = [bucket["Percent"] for bucket in data]
    assert percents == sorted(percents)  # cumulative, as Fortio writes it
    for bucket, following in itertools.pairwise(data):
        assert bucket["Start"] < bucket["End"] <= following["Start"]
    assert len(data) < 100  # coarsened for charts, not HDR's thousands of buckets


def test_closed_loop_requests_max(finished_result: RunResult) -> None:
    finished_result.plan = finished_result.plan.model_copy(update={"load": ClosedLoop(concurrency=12)})
    document = fortio_document(finished_result)
    assert document["RequestedQPS"] == "max"
    assert document["NumThreads"] == 12
