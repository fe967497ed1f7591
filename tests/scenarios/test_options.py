"""`meshload run`'s options as a plan: a URL with options, or a scenario with options as overrides."""

from __future__ import annotations

import re

import pytest

from meshload.errors import MeshloadError, UsageError
from meshload.scenarios import ClosedLoop, OpenLoop, parse_headers, parse_labels, plan_from_options


def test_a_url_and_options_make_the_whole_plan() -> None:
    plan = plan_from_options(
        "http://127.0.0.1:8080/productpage",
        None,
        rate=200,
        duration_s=45,
        warmup_s=5,
        arrival="poisson",
        connections=16,
        method="post",
        headers=["Content-Type: application/json", "x-trace:  a:b "],
        body="{}",
        timeout_s=2,
        labels=["smp.function=retries", "level=200"],
    )
    assert [target.url for target in plan.targets] == ["http://127.0.0.1:8080/productpage"]
    assert plan.load == OpenLoop(rate=200, arrival="poisson")
    assert (plan.duration_s, plan.warmup_s, plan.timeout_s, plan.max_connections) == (45, 5, 2, 16)
    assert (plan.method, plan.body) == ("POST", "{}")
    assert plan.headers == {"Content-Type": "application/json", "x-trace": "a:b"}
    assert plan.labels == {"smp.function": "retries", "level": "200"}

    closed = plan_from_options("http://127.0.0.1:8080/", None, concurrency=8, duration_s=10)
    assert closed.load == ClosedLoop(concurrency=8)
    assert closed.method == "GET"
    # A body without a method is a POST, as curl and fortio do it.
    assert plan_from_options("http://127.0.0.1:1/", None, rate=1, body="x").method == "POST"


def test_a_scenario_with_options_overrides_its_keys() -> None:
    plan = plan_from_options(
        "http://127.0.0.1:18080",  # with a scenario, the URL is the base of its relative paths
        "bookinfo-mix",
        rate=40,
        duration_s=20,
        headers=["x-user: jason"],
        labels=["smp.function=mtls"],
    )
    assert plan.name == "bookinfo-mix"
    assert plan.targets[0].url == "http://127.0.0.1:18080/productpage"
    assert plan.load == OpenLoop(rate=40, arrival="poisson")  # the file's arrival is kept
    assert plan.duration_s == 20
    assert plan.headers["x-user"] == "jason"
    assert plan.labels == {"scenario": "bookinfo-mix", "smp.function": "mtls"}

    closed = plan_from_options(None, "bookinfo-productpage", concurrency=4, base_url="http://127.0.0.1:1/")
    assert closed.load == ClosedLoop(concurrency=4)
    assert closed.targets[0].url == "http://127.0.0.1:1/productpage"
    # The file gives the load, so neither --rate nor --concurrency is needed.
    assert plan_from_options("http://127.0.0.1:1", "bookinfo-productpage").load == OpenLoop(rate=100)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate": 10, "concurrency": 2}, "--rate and --concurrency exclude each other"),
        ({}, "give --rate"),
        ({"rate": 0}, "--rate: must be greater than 0 (got 0)"),
        ({"concurrency": -2}, "--concurrency: must be greater than 0 (got -2)"),
        ({"rate": 5, "duration_s": 0}, "--duration: must be greater than 0"),
        ({"rate": 5, "warmup_s": -1}, "--warmup: must not be negative"),
        ({"rate": 5, "connections": 0}, "--connections: must be greater than 0"),
        ({"rate": 5, "arrival": "bursty"}, "--arrival: must be 'constant' or 'poisson' (got 'bursty')"),
        ({"concurrency": 5, "arrival": "poisson"}, "--arrival poisson applies to --rate"),
        ({"rate": 5, "headers": ["no colon"]}, '-H/--header: "no colon" is not a header; use "Name: value"'),
        ({"rate": 5, "headers": [": empty name"]}, '-H/--header: ": empty name" is not a header'),
        ({"rate": 5, "labels": ["novalue"]}, '--label: "novalue" is not a label; use key=value'),
        ({"rate": 5, "method": "GE T"}, "--method: 'GE T' is not an HTTP method"),
    ],
)
def test_bad_options_are_one_line_naming_the_option(kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        plan_from_options("http://127.0.0.1:1/", None, **kwargs)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_missing_or_bad_target_is_explained() -> None:
    with pytest.raises(UsageError, match="give the URL to load, or --scenario"):
        plan_from_options(None, None, rate=1)
    with pytest.raises(
        UsageError, match=re.escape("URL: '127.0.0.1:1' is not an http://, https://, grpc:// or grpcs:// URL")
    ):
        plan_from_options("127.0.0.1:1", None, rate=1)
    # A scenario's own errors stay PlanErrors (file and line); both are one-line MeshloadErrors.
    with pytest.raises(MeshloadError, match="base_url"):
        plan_from_options(None, "bookinfo-mix", rate=1)


def test_header_and_label_parsing() -> None:
    assert parse_headers(["A: 1", "b:2", "Cookie: session=x; y=z", "empty:"]) == {
        "A": "1",
        "b": "2",
        "Cookie": "session=x; y=z",
        "empty": "",
    }
    assert parse_labels(["a=1", "b = two words ", "c=x=y"]) == {"a": "1", "b": "two words", "c": "x=y"}
