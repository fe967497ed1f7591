"""The built-in grpc-balancing study, shortened, end to end on the real testbed: with one client
connection grpc-l4 puts (nearly) every call on one replica and grpc-l7 spreads them within a few
points of even, as the three ratings-grpc replicas counted them; the report shows the shares beside
the latency. One block of 0.5 s warm-up + 1.5 s per arm: about 40 s on 2 cores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPLICAS = ("ratings-grpc-1", "ratings-grpc-2", "ratings-grpc-3")


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_grpc_balancing_one_connection_pins_under_l4_and_spreads_under_l7(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "MESHLOAD_TESTBED_DIR": str(tmp_path / "testbed"), "COLUMNS": "200"}
    command = [sys.executable, "-m", "meshload", "study", "grpc-balancing", "--out", str(out), "--no-history"]
    command += ["--repetitions", "1", "--duration", "1.5s", "--warmup", "0.5s"]
    finished = subprocess.run(command, capture_output=True, text=True, env=env, timeout=220, check=False)
    assert finished.returncode == 0, finished.stderr[-3000:]

    study = json.loads((out / "study.json").read_text())
    cells = {cell["function"]: cell for cell in study["cells"]}
    assert set(cells) == {"none", "grpc-l4-1conn", "grpc-l7-1conn", "grpc-l4-4conn", "grpc-l7-4conn"}
    shares = {}
    for arm, cell in cells.items():
        counts = cell["replicas"]["ratings-grpc"]
        assert set(counts) == set(REPLICAS), arm
        total = sum(counts.values())
        # the replicas' own total is the run's, give or take a collection turn at each end of the window
        assert abs(total - cell["completed"]) <= 0.1 * cell["completed"] + 25, (arm, total, cell["completed"])
        shares[arm] = {name: count / total for name, count in counts.items()}
    assert max(shares["grpc-l4-1conn"].values()) >= 0.99, shares  # one connection: one replica
    for arm in ("grpc-l7-1conn", "grpc-l7-4conn"):
        assert all(abs(share - 1 / 3) <= 0.03 for share in shares[arm].values()), shares  # per request
    assert min(shares["grpc-l4-4conn"].values()) > 0.15, shares  # four connections reach every replica

    page = (out / "index.html").read_text()
    assert 'id="replicas"' in page and "Share of ratings-grpc requests per replica at 100 rps" in page
    assert "requests per replica (counted by the replicas) and latency" in finished.stdout
