"""Plan files: the format, errors that name the file and the line, overrides, Meshery/SMP test
files, and the built-in scenarios."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from meshload.errors import PlanError
from meshload.scenarios import ClosedLoop, OpenLoop, builtin_scenario, list_builtin, load_plan_file
from meshload.scenarios.files import calls_grpc_base


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def test_a_full_plan_file_becomes_the_plan_it_describes(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "full.yaml",
        """
        name: reviews-retries
        base_url: http://127.0.0.1:8080/
        targets:
          - url: /productpage
            weight: 3
          - url: http://127.0.0.2:9090/api/v1/products
            method: post
            headers: {content-type: application/json, x-count: 5}
            body: '{"id": 0}'
        headers:
          user-agent: meshload
          Cookie: a=1
        cookies: {b: 2}
        load:
          rate: 150
          arrival: poisson
        duration: 1m30s
        warmup: 10s
        timeout: 2500ms
        connect_timeout: 1s
        tls_verify: false
        max_connections: 32
        seed: 42
        labels: {smp.function: retries, level: 150}
        """,
    )
    plan = load_plan_file(path)
    assert plan.name == "reviews-retries"
    assert [target.url for target in plan.targets] == [
        "http://127.0.0.1:8080/productpage",
        "http://127.0.0.2:9090/api/v1/products",
    ]
    assert [target.weight for target in plan.targets] == [3.0, 1.0]
    assert plan.targets[1].method == "POST"
    assert plan.targets[1].headers == {"content-type": "application/json", "x-count": "5"}
    assert plan.targets[1].body == '{"id": 0}'
    assert plan.headers == {"user-agent": "meshload", "Cookie": "a=1; b=2"}
    assert plan.load == OpenLoop(rate=150.0, arrival="poisson")
    assert (plan.duration_s, plan.warmup_s, plan.total_s) == (90.0, 10.0, 100.0)
    assert (plan.timeout_s, plan.connect_timeout_s) == (2.5, 1.0)
    assert (plan.tls_verify, plan.max_connections, plan.seed) == (False, 32, 42)
    assert plan.labels == {"smp.function": "retries", "level": "150"}


def test_json_plans_closed_loops_and_staged_durations(tmp_path: Path) -> None:
    closed = tmp_path / "closed.json"
    closed.write_text(
        json.dumps({"url": "http://127.0.0.1:1/x", "load": {"concurrency": 8, "think_time": "100ms"}, "duration": 5})
    )
    plan = load_plan_file(closed)
    assert plan.name == "closed"
    assert plan.load == ClosedLoop(concurrency=8, think_time_s=0.1)
    assert plan.duration_s == 5.0
    # With stages, the duration may be left out: the stages set it (minus the warm-up).
    staged = _write(
        tmp_path,
        "staged.yaml",
        """
        url: http://127.0.0.1:1/x
        load:
          stages: [{duration: 30s, rate: 100}, {duration: 1m, rate: 300}]
        warmup: 30s
        """,
    )
    plan = load_plan_file(staged)
    assert isinstance(plan.load, OpenLoop)
    assert plan.load.rate == 100.0  # starts at the first stage's rate
    assert [stage.rate for stage in plan.load.stages] == [100.0, 300.0]
    assert (plan.warmup_s, plan.duration_s) == (30.0, 60.0)


# Each case: file text, the line the error must point at, and what the message must say.
BAD_FILES = [
    (
        """
        url: http://127.0.0.1:1/
        duration: 10s
        load:
          arrival: poisson
          rate: -5
        """,
        5,
        "load.rate: must be greater than 0 (got -5)",
    ),
    (
        """
        url: http://127.0.0.1:1/
        duration: 10s
        load:
          rat: 5
        """,
        4,
        "load.rat: unknown key; the keys allowed here are: rate, concurrency, arrival, stages, think_time",
    ),
    (
        """
        url: http://127.0.0.1:1/
        durration: 10s
        load: {rate: 5}
        """,
        2,
        "durration: unknown key; the keys allowed here are: name, description, base_url, url, targets",
    ),
    (
        """
        url: http://127.0.0.1:1/
        load: {rate: 5}

        duration: 5x
        """,
        4,
        'duration: "5x" is not a duration; use e.g. 30s, 5m, 1h',
    ),
    (
        """
        url: http://127.0.0.1:1/
        duration: 10s
        load:
          concurrency: 4
          rate: 5
        """,
        5,
        "load.rate: cannot be combined with concurrency",
    ),
    (
        """
        duration: 10s
        load: {rate: 5}
        targets:
          - url: http://127.0.0.1:1/a
          - url: /b
        """,
        5,
        "targets[1].url: '/b' is relative and no base_url is set",
    ),
    (
        """
        url: http://127.0.0.1:1/
        load:
          rate: 5
          stages:
            - {duration: 10s, rate: 5}
        duration: 20s
        """,
        4,
        "load.stages: last 10s but warmup + duration is 20s",
    ),
    (
        """
        url: http://127.0.0.1:1/
        load: {rate: 5}
        duration: 10s
        url: http://127.0.0.1:2/
        """,
        4,
        "url: duplicate key",
    ),
    (
        """
        url: http://127.0.0.1:1/
        load: {rate: 5
        duration: 10s
        """,
        3,
        "not valid YAML",
    ),
    (
        """
        duration: 10s
        load: {rate: 5}
        targets:
          - url: http://127.0.0.1:1/a
          - url: http://127.0.0.1:1/b
            weight: 0
        """,
        6,
        "targets[1].weight: must be greater than 0 (got 0)",
    ),
    (
        """
        url: http://127.0.0.1:1/
        duration: 10s
        """,
        1,
        "load: is required",
    ),
    (
        """
        duration: 10s
        load: {rate: 5}
        targets:
          - url: http://127.0.0.1:1/a
            wieght: 2
        """,
        5,
        "targets[0].wieght: unknown key; the keys allowed here are: url, weight, method, headers, body",
    ),
    (
        """
        url: ftp://127.0.0.1:1/
        duration: 10s
        load: {rate: 5, arrival: bursty}
        """,
        3,
        "load.arrival: must be 'constant' or 'poisson' (got 'bursty')",
    ),
]


@pytest.mark.parametrize(("text", "line", "message"), BAD_FILES)
def test_every_file_error_names_the_file_and_the_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = _write(tmp_path, "bad.yaml", text)
    with pytest.raises(PlanError) as caught:
        load_plan_file(path)
    error = caught.value
    assert (error.path, error.line) == (str(path), line)
    assert str(error).startswith(f"{path}:{line}: ")
    assert message in str(error)
    assert "\n" not in str(error)


def test_json_plan_errors_carry_the_line_of_the_key(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"url": "http://127.0.0.1:1/", "duration": "10s", "load": {"rate": 0}}, indent=2))
    with pytest.raises(PlanError) as caught:
        load_plan_file(path)
    assert str(caught.value) == f"{path}:5: load.rate: must be greater than 0 (got 0)"


def test_json_syntax_errors_carry_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "url": "http://127.0.0.1:1/",\n\t"load": {"rate": 5},\n  "duration": 10,\n}\n')
    with pytest.raises(PlanError) as caught:
        load_plan_file(path)
    assert caught.value.line == 5 and "not valid JSON" in str(caught.value)


def test_empty_missing_and_non_mapping_files_are_clear(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="empty"):
        load_plan_file(_write(tmp_path, "empty.yaml", "# nothing\n"))
    with pytest.raises(PlanError, match="mapping"):
        load_plan_file(_write(tmp_path, "list.yaml", "- a\n- b\n"))
    with pytest.raises(PlanError, match="no such file"):
        load_plan_file(tmp_path / "absent.yaml")
    with pytest.raises(PlanError, match=r"built-in ones are: .*bookinfo-mix"):
        load_plan_file("no-such-scenario")


def test_overrides_replace_file_keys_and_their_errors_say_where_they_came_from(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "base.yaml",
        """
        targets: [{url: /productpage}]
        load:
          rate: 10
        duration: 10s
        labels: {a: b}
        """,
    )
    plan = load_plan_file(
        path,
        {"base_url": "http://127.0.0.1:8080", "load.rate": 250, "duration": "2m", ("labels", "smp.function"): "mtls"},
    )
    assert plan.targets[0].url == "http://127.0.0.1:8080/productpage"
    assert isinstance(plan.load, OpenLoop) and plan.load.rate == 250.0
    assert plan.duration_s == 120.0
    assert plan.labels == {"a": "b", "smp.function": "mtls"}
    # Switching the load kind: None removes a key.
    plan = load_plan_file(path, {"base_url": "http://h:1", "load.rate": None, "load.concurrency": 3})
    assert plan.load == ClosedLoop(concurrency=3)

    with pytest.raises(PlanError) as caught:
        load_plan_file(path, {"base_url": "http://h:1", "load.rate": -1})
    assert caught.value.line is None  # the file's line would point at a value that is not used
    assert str(caught.value) == f"{path}: load.rate: must be greater than 0 (got -1) (value from the command line)"
    with pytest.raises(PlanError, match="base_url: 'h:1' must start with http"):
        load_plan_file(path, {"base_url": "h:1"})


MESHERY_YAML = """
test:
  smp_version: v0.0.1
  name: Istio Performance Test
  labels: {}
  clients:
    - internal: false
      load_generator: fortio
      protocol: 1
      connections: 2
      rps: 10
      headers: {}
      cookies: {}
      body: ''
      content_type: ''
      endpoint_urls: ['http://localhost:2323/productpage']
  duration: '30m'
mesh:
  type: 3
"""


def test_a_meshery_smp_test_file_is_read_as_a_plan(tmp_path: Path) -> None:
    plan = load_plan_file(_write(tmp_path, "meshery.yaml", MESHERY_YAML))
    assert plan.name == "Istio Performance Test"
    assert [target.url for target in plan.targets] == ["http://localhost:2323/productpage"]
    assert plan.load == OpenLoop(rate=10.0)
    assert plan.duration_s == 1800.0
    assert plan.max_connections == 2
    assert plan.labels == {"mesh": "istio"}
    # The same file with a CLI-style override.
    assert load_plan_file(tmp_path / "meshery.yaml", {"duration": 30}).duration_s == 30.0


def test_newer_meshery_camel_case_files_and_several_clients(tmp_path: Path) -> None:
    document = {
        "test": {
            "smpVersion": "v0.6.1",
            "id": "6c1b3e1c",
            "name": "two generators",
            "labels": {"function": "retries"},
            "clients": [
                {
                    "loadGenerator": "fortio",
                    "protocol": "http",
                    "rps": 30,
                    "connections": 4,
                    "endpointUrls": ["http://127.0.0.1:1/a", "http://127.0.0.1:1/b"],
                    "cookies": {"user": "jason"},
                },
                {
                    "protocol": 1,
                    "rps": 60,
                    "body": "x=1",
                    "contentType": "application/x-www-form-urlencoded",
                    "endpointUrls": ["http://127.0.0.1:1/c"],
                },
            ],
            "duration": "1m30s",
        },
        "mesh": "linkerd",
    }
    path = tmp_path / "meshery.json"
    path.write_text(json.dumps(document, indent=2))
    plan = load_plan_file(path)
    assert plan.load == OpenLoop(rate=90.0)
    assert [(target.url, target.weight) for target in plan.targets] == [
        ("http://127.0.0.1:1/a", 15.0),
        ("http://127.0.0.1:1/b", 15.0),
        ("http://127.0.0.1:1/c", 60.0),
    ]
    assert plan.targets[0].headers == {"Cookie": "user=jason"}
    assert (plan.targets[2].method, plan.targets[2].body) == ("POST", "x=1")
    assert plan.targets[2].headers == {"Content-Type": "application/x-www-form-urlencoded"}
    assert plan.duration_s == 90.0
    assert plan.labels == {"function": "retries", "mesh": "linkerd", "smp.test_id": "6c1b3e1c"}


def test_a_max_speed_meshery_file_is_a_closed_loop(tmp_path: Path) -> None:
    text = MESHERY_YAML.replace("rps: 10", "rps: 0").replace("connections: 2", "connections: 6")
    plan = load_plan_file(_write(tmp_path, "max.yaml", text))
    assert plan.load == ClosedLoop(concurrency=6)


@pytest.mark.parametrize(
    ("old", "new", "line", "message"),
    [
        ("protocol: 1", "protocol: 2", 8, "test.clients[0].protocol: 2 is not HTTP"),
        ("rps: 10", "rps: -1", 10, "test.clients[0].rps: must be at least 0"),
        ("duration: '30m'", "duration: '30 minutes'", 16, 'test.duration: "30 minutes" is not a duration'),
        (
            "      body: ''",
            "      bodyy: ''",
            13,
            "test.clients[0].bodyy: unknown key; the keys allowed here are: internal",
        ),
        (
            "['http://localhost:2323/productpage']",
            "['localhost:2323']",
            15,
            "test.clients[0].endpoint_urls[0]: 'localhost:2323'",
        ),
    ],
)
def test_meshery_file_errors_name_the_line(tmp_path: Path, old: str, new: str, line: int, message: str) -> None:
    assert old in MESHERY_YAML
    path = _write(tmp_path, "meshery.yaml", MESHERY_YAML.replace(old, new))
    with pytest.raises(PlanError) as caught:
        load_plan_file(path)
    assert caught.value.line == line
    assert message in str(caught.value)


def test_every_builtin_scenario_loads_against_any_ingress() -> None:
    names = list_builtin()
    assert {"bookinfo-productpage", "bookinfo-mix", "bookinfo-login"} <= set(names)
    for name in names:
        assert builtin_scenario(name).is_file()
        if calls_grpc_base(name):  # gRPC methods: the ingress is a gRPC one
            plan = load_plan_file(name, {"base_url": "grpc://127.0.0.1:18081"})
            assert all(target.url.startswith("grpc://127.0.0.1:18081/") for target in plan.targets)
            assert plan.protocol == "grpc" and plan.name == name
            continue
        plan = load_plan_file(name, {"base_url": "http://127.0.0.1:18080"})
        assert all(target.url.startswith("http://127.0.0.1:18080/") for target in plan.targets)
        assert plan.name == name
        # Without an ingress the relative paths cannot resolve, and the error says how to give one.
        with pytest.raises(PlanError, match="base_url"):
            load_plan_file(name)
    assert calls_grpc_base("ratings-grpc") and not calls_grpc_base("bookinfo-productpage")


def test_the_bookinfo_mix_is_dominated_by_the_product_page() -> None:
    plan = load_plan_file("bookinfo-mix", {"base_url": "http://127.0.0.1:1"})
    weights = {target.url.removeprefix("http://127.0.0.1:1"): target.weight for target in plan.targets}
    assert set(weights) == {"/productpage", "/api/v1/products", "/api/v1/products/0", "/api/v1/products/0/reviews"}
    assert weights["/productpage"] / sum(weights.values()) >= 0.75


def test_the_login_scenario_carries_a_session_productpage_accepts() -> None:
    flask = pytest.importorskip("flask")  # installed with locust, which the test extra requires
    from meshload.scenarios.bookinfo_session import BOOKINFO_SECRET_KEY

    plan = load_plan_file("bookinfo-login", {"base_url": "http://127.0.0.1:1"})
    cookie = plan.headers["Cookie"]
    assert cookie.startswith("session=")

    # productpage's own session handling: a Flask app with BookInfo's secret key.
    app = flask.Flask("productpage")
    app.secret_key = BOOKINFO_SECRET_KEY

    @app.route("/productpage")
    def productpage() -> str:
        return flask.session.get("user", "")

    client = app.test_client(use_cookies=False)  # send exactly the plan's Cookie header
    assert client.get("/productpage", headers={"Cookie": cookie}).text == "jason"
    assert client.get("/productpage").text == ""
    tampered = cookie[:-3] + ("AAA" if not cookie.endswith("AAA") else "BBB")
    assert client.get("/productpage", headers={"Cookie": tampered}).text == ""
