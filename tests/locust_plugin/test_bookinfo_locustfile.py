"""The built-in BookInfo locustfile, found the documented way (`python -m meshload.locust --path bookinfo`),
runs its journey against the real local testbed (BookInfo behind HAProxy sidecars and an ingress):
every step passes its checks, jason's pages are jason's, and every step is its own request name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from meshload.testbed import Testbed

from .test_locust_runs import assert_counts_agree

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

JOURNEY = [
    "anonymous: /productpage",
    "sign in",
    "jason: /productpage",
    "api: products",
    "api: details",
    "api: reviews",
    "api: ratings",
    "sign out",
]


def meshload_locust(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "meshload.locust", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_the_built_in_locustfiles_are_found_by_name() -> None:
    found = meshload_locust("--path", "bookinfo")
    assert found.returncode == 0 and Path(found.stdout.strip()).name == "bookinfo.py"
    assert Path(found.stdout.strip()).is_file()
    assert meshload_locust("--list").stdout.split() == ["bookinfo"]
    missing = meshload_locust("--path", "nope")
    assert missing.returncode == 2
    assert missing.stderr.strip() == "meshload: no built-in locustfile 'nope'; choose one of: bookinfo"


def test_the_bookinfo_journey_passes_every_check_against_the_testbed(tmp_path, locust_launcher) -> None:
    locustfile = Path(meshload_locust("--path", "bookinfo").stdout.strip())
    bed = Testbed(tmp_path / "testbed")
    bed.up("sidecar")
    try:
        run = locust_launcher.run(
            locustfile,
            "-u",
            "3",
            "-r",
            "10",
            "--host",
            bed.ingress_url,
            run_time_s=5,
            MESHLOAD_BOOKINFO_RATE="3",
        )
        # The testbed counts its own answers elsewhere; an in-flight visit at the stop is at most one
        # request per user, as for any server.
        block = assert_counts_agree(run, run.locust_total()["requests"], users=3)
    finally:
        assert bed.down() == []

    names = block["by_name"]
    assert list(names) == sorted(JOURNEY)
    visits = names["anonymous: /productpage"]["requests"]
    assert visits >= 8
    for step in JOURNEY:
        # Each visit makes each step once (the last visit may have been cut short by the stop).
        assert visits - 1 <= names[step]["requests"] <= visits, step
        assert names[step]["failures"] == 0 and names[step]["errors"] == 0, step
    assert block["status_codes"].keys() <= {"200", "302"}
    assert block["plan"]["load"]["kind"] == "open" and block["plan"]["load"]["rate"] == 3.0
