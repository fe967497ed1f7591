"""Interval cuts, request bytes, target sequences."""

from __future__ import annotations

from collections import Counter

import pytest

from meshload.scenarios.plan import Plan
from meshload.worker.engines.http_request import build_templates, target_sequence
from meshload.worker.intervals import interval_cuts_s, is_warmup


def test_cuts_fall_every_interval_and_exactly_at_the_warmup_end() -> None:
    assert interval_cuts_s(3.0, 0.0, 1.0) == [1.0, 2.0]
    assert interval_cuts_s(3.0, 0.5, 1.0) == [0.5, 1.0, 2.0]
    assert interval_cuts_s(2.5, 1.0, 1.0) == [1.0, 2.0]
    assert interval_cuts_s(0.4, 0.0, 1.0) == []
    assert is_warmup(0.5, 0.5) and not is_warmup(1.0, 0.5) and not is_warmup(0.5, 0.0)
    with pytest.raises(ValueError):
        interval_cuts_s(1.0, 0.0, 0.0)


def test_request_bytes_are_complete_and_origins_shared() -> None:
    plan = Plan(
        targets=[
            {"url": "http://127.0.0.1:8080/productpage?u=normal", "headers": {"x-user": "jason"}},
            {"url": "http://127.0.0.1:8080/api", "method": "post", "body": "{}"},
            {"url": "https://localhost/secure"},
        ],
        headers={"Accept": "*/*", "host": "override.example"},
        load={"kind": "open", "rate": 10},
        duration_s=1,
    )
    origins, templates = build_templates(plan)
    assert [(o.host, o.port, o.tls) for o in origins] == [("127.0.0.1", 8080, False), ("localhost", 443, True)]
    assert origins[1].server_hostname == "localhost" and origins[0].server_hostname is None
    assert [t.origin_index for t in templates] == [0, 0, 1]
    get = templates[0].payload
    assert get.startswith(b"GET /productpage?u=normal HTTP/1.1\r\n")
    assert b"Host: override.example\r\n" in get and b"127.0.0.1:8080" not in get  # user header wins
    assert b"x-user: jason\r\n" in get and b"Accept: */*\r\n" in get
    assert b"Content-Length" not in get and get.endswith(b"\r\n\r\n")
    post = templates[1].payload
    assert post.startswith(b"POST /api HTTP/1.1\r\n") and post.endswith(b"Content-Length: 2\r\n\r\n{}")


def test_target_sequence_follows_weights_and_the_seed() -> None:
    plan = Plan(
        targets=[{"url": "http://a/", "weight": 3}, {"url": "http://b/", "weight": 1}],
        load={"kind": "open", "rate": 10},
        duration_s=1,
        seed=7,
    )
    sequence = target_sequence(plan, worker_index=0)
    shares = Counter(sequence)
    assert shares[0] / len(sequence) == pytest.approx(0.75, abs=0.03)
    assert sequence == target_sequence(plan, worker_index=0)
    assert sequence != target_sequence(plan, worker_index=1)
