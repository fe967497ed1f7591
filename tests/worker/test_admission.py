"""What a worker agrees to run: its target allowlist (loopback only by default) and its ceilings, each
refusal one sentence that names the limit and what to change."""

from __future__ import annotations

import math

import pytest

from meshload.scenarios.plan import Plan
from meshload.scenarios.schedule import WorkerShare
from meshload.worker.admission import WorkerLimits, refusal, share_connections, share_rate


def share(urls: list[str], load: dict, index: int = 0, count: int = 1, **plan: object) -> WorkerShare:
    return WorkerShare(
        Plan(targets=[{"url": u} for u in urls], load=load, duration_s=60, **plan),
        index,
        count,
    )


OPEN = {"kind": "open", "rate": 100.0}


def test_without_an_allowlist_only_loopback_is_allowed() -> None:
    limits = WorkerLimits.from_allowlist([])
    for url in ("http://127.0.0.1:8080/", "http://127.3.4.5/", "http://[::1]:80/", "http://localhost/x"):
        assert refusal(share([url], OPEN), limits) is None, url
    message = refusal(share(["http://127.0.0.1/", "http://10.1.2.3:9080/p"], OPEN), limits)
    assert message == (
        "target 10.1.2.3 is not in its allowlist (127.0.0.0/8, ::1/128); "
        "start it with --allow-target 10.1.2.3 to allow it"
    )
    assert "not in its allowlist" in (refusal(share(["http://name.invalid/"], OPEN), limits) or "")


def test_an_allowlist_takes_names_addresses_and_networks() -> None:
    limits = WorkerLimits.from_allowlist(["10.0.0.0/8", "productpage.bookinfo", "[fd00::1]", "192.168.1.7"])
    for url in ("http://10.200.0.1/", "http://PRODUCTPAGE.bookinfo./", "http://[fd00::1]:9080/", "http://192.168.1.7/"):
        assert refusal(share([url], OPEN), limits) is None, url
    for url in ("http://127.0.0.1/", "http://192.168.1.8/", "http://reviews.bookinfo/"):
        assert refusal(share([url], OPEN), limits) is not None, url  # loopback too, once a list is given
    with pytest.raises(ValueError, match=r"'10\.0\.0\.0/33' is neither"):
        WorkerLimits.from_allowlist(["10.0.0.0/33"])


def test_ceilings_on_rate_duration_and_connections() -> None:
    limits = WorkerLimits.from_allowlist([], max_rate=50, max_duration_s=120, max_connections=16)
    assert refusal(share(["http://127.0.0.1/"], OPEN, index=1, count=2, max_connections=16), limits) is None
    assert refusal(share(["http://127.0.0.1/"], OPEN, max_connections=16), limits) == (
        "its share is 100 req/s, above its --max-rate 50 req/s; use more workers or less load"
    )
    staged = {"kind": "open", "rate": 10.0, "stages": [{"duration_s": 30, "rate": 80}, {"duration_s": 30, "rate": 10}]}
    assert "80 req/s" in (refusal(share(["http://127.0.0.1/"], staged, max_connections=8), limits) or "")
    long_run = share(["http://127.0.0.1/"], {"kind": "open", "rate": 10.0}, warmup_s=70, max_connections=8)
    assert refusal(long_run, limits) == "the run lasts 130s with its warm-up, above its --max-duration 120s"
    many = share(["http://127.0.0.1/"], {"kind": "open", "rate": 10.0}, max_connections=64)
    assert refusal(many, limits) == (
        "its share would open up to 64 connections, above its --max-connections 16; "
        "use more workers or fewer connections"
    )
    closed = share(["http://127.0.0.1/a", "http://127.0.0.2/b"], {"kind": "closed", "concurrency": 8})
    assert share_rate(closed) == math.inf and share_connections(closed) == 16
    assert "an unpaced closed loop" in (refusal(closed, limits) or "")
    paced = share(["http://127.0.0.1/"], {"kind": "closed", "concurrency": 10, "think_time_s": 0.5}, count=2)
    assert share_rate(paced) == 10.0 and refusal(paced, limits) is None
