"""Each traffic-control function demonstrably does its job, switched on one running testbed, in every
topology it applies in (see `where` in conftest.py)."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import subprocess
import time
from typing import Any

import psutil
import pytest

from meshload.coordinator.mesh.local import LocalTestbedMesh
from meshload.testbed.topology import INGRESS_ONLY, PER_NODE, SIDECAR, Ports, instances_of

from .client import fetch, fetch_many, login
from .conftest import where

RATINGS_API = "/api/v1/products/0/ratings"
REVIEWS_API = "/api/v1/products/0/reviews"
DELAY_7S_TO_1S = 1 / 7  # fault_scale making ratings' 7 s delay last 1 s
# data-plane proxies beside the nine applications (BookInfo's six and three gRPC replicas)
SERVICE_PROXIES = {SIDECAR: 9, PER_NODE: 2, INGRESS_ONLY: 0}


def _ports(testbed) -> Ports:
    return Ports.from_json(testbed.folder.load()["ports"])


@pytest.fixture
def ratings_mode(testbed):
    """Set ratings' own behaviour for one test; always back to normal after it."""

    def set_mode(mode: str, fault_scale: float = 1.0) -> None:
        testbed.set_app_mode("ratings", mode, fault_scale=fault_scale)

    yield set_mode
    testbed.set_app_mode("ratings", "normal", fault_scale=1.0)


def _stats(testbed, proxy: str) -> list[dict[str, str]]:
    with socket.socket(socket.AF_UNIX) as stats:
        stats.connect(testbed.stats_socket(proxy))
        stats.sendall(b"show stat\n")
        raw = b""
        while chunk := stats.recv(65536):
            raw += chunk
    header, *rows = raw.decode().strip().splitlines()
    names = header.lstrip("# ").split(",")
    return [dict(zip(names, row.split(","), strict=False)) for row in rows]


def _server(testbed, proxy: str, backend: str, server: str) -> dict[str, str]:
    return next(row for row in _stats(testbed, proxy) if row["pxname"] == backend and row["svname"] == server)


def in_topologies(*topologies: str):
    return pytest.mark.parametrize("topology", list(topologies), indirect=True, scope="module")


@in_topologies(*where("mtls"))
def test_mtls_refuses_clients_without_a_testbed_certificate(testbed, topology, tmp_path):
    testbed.apply("mtls")
    details = _ports(testbed).instances["details-v1"].inbound
    certs = testbed.folder.certs_dir
    # plaintext to a sidecar: no HTTP answer
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        fetch(f"http://127.0.0.1:{details}/details/0", timeout_s=3)

    def tls_get(context: ssl.SSLContext) -> tuple[bytes, Any]:
        with (
            socket.create_connection(("127.0.0.1", details), timeout=3) as raw,
            context.wrap_socket(raw, server_hostname="details") as tls,
        ):
            tls.sendall(b"GET /details/0 HTTP/1.1\r\nhost: details\r\nconnection: close\r\n\r\n")
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
            return answer, tls.getpeercert()

    trusting = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    with pytest.raises((ssl.SSLError, ConnectionError)):
        answer, _ = tls_get(trusting)  # no client certificate
        assert not answer.startswith(b"HTTP/1.1 200"), "a client without a certificate was served"
        raise ConnectionError("refused after the handshake")

    # a certificate from another CA is refused too
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(tmp_path / "other.key"),
            "-out",
            str(tmp_path / "other.crt"),
            "-days",
            "1",
            "-subj",
            "/CN=productpage",
        ],
        check=True,
        capture_output=True,
    )
    stranger = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    stranger.load_cert_chain(tmp_path / "other.crt", tmp_path / "other.key")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        answer, _ = tls_get(stranger)
        assert not answer.startswith(b"HTTP/1.1 200"), "a certificate from another CA was accepted"
        raise ConnectionError("refused after the handshake")

    # a workload certificate from the testbed CA is accepted, and the sidecar proves it is details
    member = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    member.load_cert_chain(certs / "productpage.pem")
    answer, peer = tls_get(member)
    assert answer.startswith(b"HTTP/1.1 200") and b'"author":"William Shakespeare"' in answer
    assert ("URI", "spiffe://cluster.local/ns/default/sa/bookinfo-details") in peer["subjectAltName"]
    assert dict(x[0] for x in peer["issuer"])["commonName"] == "meshload testbed CA"
    # and BookInfo still works end to end, every hop encrypted
    assert fetch(f"{testbed.ingress_url}{REVIEWS_API}").status == 200
    assert b"Book Details" in fetch(f"{testbed.ingress_url}/productpage").body


@in_topologies(*where("rate-limit"))
def test_rate_limit_answers_429_above_the_limit(testbed, topology):
    limit_rps = 10
    testbed.apply("rate-limit", {"limit_rps": str(limit_rps)})
    started = time.monotonic()
    answers = fetch_many(f"{testbed.ingress_url}/api/v1/products", 60, concurrency=6)
    elapsed_s = time.monotonic() - started
    admitted = [a for a in answers if a.status == 200]
    limited = [a for a in answers if a.status == 429]
    assert len(admitted) + len(limited) == 60
    assert limited and all(a.headers.get("x-local-rate-limit") == "true" for a in limited)
    # a sliding one-second window: at most the limit per second elapsed (plus the first window)
    assert len(admitted) <= limit_rps * (elapsed_s + 1) + 2
    assert len(admitted) >= limit_rps // 2


@in_topologies(*where("retries", service="ratings"))
def test_retries_raise_success_when_ratings_is_faulty(testbed, topology, ratings_mode):
    ratings_mode("faulty")  # half of ratings' answers are 503
    testbed.apply("sidecar")
    plain = fetch_many(f"{testbed.ingress_url}{RATINGS_API}", 60)
    testbed.apply("retries", {"service": "ratings", "attempts": "3"})
    retried = fetch_many(f"{testbed.ingress_url}{RATINGS_API}", 60)
    plain_rate = sum(a.status == 200 for a in plain) / len(plain)
    retried_rate = sum(a.status == 200 for a in retried) / len(retried)
    assert {a.status for a in plain} == {200, 503}
    assert plain_rate < 0.8
    assert retried_rate >= 0.85 and retried_rate > plain_rate + 0.2


@in_topologies(*where("circuit-breaker", service="ratings"))
def test_circuit_breaker_turns_overload_into_fast_503(testbed, topology, ratings_mode):
    ratings_mode("delayed", DELAY_7S_TO_1S)  # half of ratings' answers take 1 s
    testbed.apply("circuit-breaker", {"service": "ratings", "max_connections": "1", "max_pending": "1"})
    answers = fetch_many(f"{testbed.ingress_url}{RATINGS_API}", 24, concurrency=12)
    overflow = [a for a in answers if a.status == 503]
    assert len(overflow) >= 6
    assert {a.status for a in answers} <= {200, 503}
    fast = sorted(a.elapsed_s for a in overflow)
    assert fast[len(fast) // 2] < 0.5  # rejected at once, not after waiting for the slow instance


@in_topologies(*where("circuit-breaker", service="reviews"))
def test_circuit_breaker_ejects_a_failing_reviews_instance(testbed, topology):
    testbed.apply("circuit-breaker", {"service": "reviews", "consecutive_errors": "2", "ejection_s": "30"})
    caller = testbed.proxy_of("productpage-v1")
    try:
        testbed.set_app_mode("reviews-v3", "failing")
        for _ in range(12):
            fetch(f"{testbed.ingress_url}{REVIEWS_API}")  # productpage's second attempt hides most failures
        v3 = _server(testbed, caller, "to_reviews", "reviews-v3")
        assert v3["status"].startswith("DOWN"), v3["status"]
        served_before = int(v3["stot"])
        pods = [fetch(f"{testbed.ingress_url}{REVIEWS_API}").json()["podname"] for _ in range(9)]
        assert not any(pod.startswith("reviews-v3") for pod in pods)
        # Should one healthy instance be missing, its HAProxy status says why (marked down, or not).
        healthy = ("reviews-v1", "reviews-v2")
        statuses = {name: _server(testbed, caller, "to_reviews", name)["status"] for name in healthy}
        assert {pod.split("-")[1] for pod in pods} == {"v1", "v2"}, (pods, statuses)
        assert int(_server(testbed, caller, "to_reviews", "reviews-v3")["stot"]) == served_before
    finally:
        testbed.set_app_mode("reviews-v3", "normal")


@in_topologies(*where("timeout", service="ratings"))
def test_timeout_cuts_slow_answers_to_504(testbed, topology, ratings_mode):
    ratings_mode("delayed", DELAY_7S_TO_1S)
    testbed.apply("timeout", {"service": "ratings", "timeout_ms": "200"})
    answers = fetch_many(f"{testbed.ingress_url}{RATINGS_API}", 16, concurrency=8)
    cut = [a for a in answers if a.status == 504]
    assert cut and {a.status for a in answers} <= {200, 504}
    assert all(0.15 < a.elapsed_s < 0.9 for a in cut)


@in_topologies(*where("timeout", service="productpage"))
def test_the_gateway_route_takes_functions_in_every_topology(testbed, topology, ratings_mode):
    # the one proxied hop ingress-only keeps: the gateway's route to productpage
    ratings_mode("delayed", DELAY_7S_TO_1S)
    testbed.apply("timeout", {"service": "productpage", "timeout_ms": "200"})
    answers = fetch_many(f"{testbed.ingress_url}{RATINGS_API}", 12, concurrency=6)
    cut = [a for a in answers if a.status == 504]
    assert cut and {a.status for a in answers} <= {200, 504}
    assert all(0.15 < a.elapsed_s < 0.9 for a in cut)
    testbed.apply("fault-abort", {"service": "productpage", "status": "503", "end_user": ""})
    try:
        aborted = fetch(f"{testbed.ingress_url}/productpage")
        assert aborted.status == 503 and aborted.body == b"fault filter abort"
    finally:
        testbed.apply("sidecar")  # every request was aborted: nothing else could run


@in_topologies(*where("fault-delay", service="details"))
def test_fault_delay_and_abort_hit_the_configured_user(testbed, topology):
    base = testbed.ingress_url
    jason = {"cookie": login(base, "jason")}
    testbed.apply("fault-delay", {"service": "details", "delay_ms": "600"})  # end_user defaults to jason
    assert fetch(f"{base}/api/v1/products/0", headers=jason).elapsed_s >= 0.6
    assert min(fetch(f"{base}/api/v1/products/0").elapsed_s for _ in range(3)) < 0.6

    testbed.apply("fault-abort", {"service": "details", "status": "555"})
    assert fetch(f"{base}/api/v1/products/0").status == 200
    aborted = fetch(f"{base}/api/v1/products/0", headers=jason)
    assert aborted.status == 555
    assert b"Error fetching product details" in fetch(f"{base}/productpage", headers=jason).body

    testbed.apply("fault-abort", {"service": "details", "percent": "50", "end_user": ""})
    statuses = {fetch(f"{base}/api/v1/products/0").status for _ in range(30)}
    assert statuses == {200, 500}


@in_topologies(*where("none"))
def test_none_bypasses_every_proxy(testbed, topology):
    mark = testbed.folder.load()["mark"]
    proxies_before = [p for p in psutil.process_iter(["name", "environ"]) if p.info["name"] == "haproxy"]
    assert proxies_before
    old_ingress = testbed.ingress_url
    testbed.apply("none")
    try:
        assert testbed.current_topology() == topology  # kept for the next proxied function
        ports = _ports(testbed)
        assert testbed.ingress_url == f"http://127.0.0.1:{ports.instances['productpage-v1'].app}"
        kinds = {p["kind"] for p in testbed.status()["processes"]}
        assert kinds == {"app", "exporter"}  # no proxy left; the metrics exporter stays
        marked = [
            p
            for p in psutil.process_iter(["name", "environ"])
            if (p.info["environ"] or {}).get("MESHLOAD_TESTBED_MARK") == mark
        ]
        assert marked and not any(p.info["name"] == "haproxy" for p in marked)
        with pytest.raises(OSError):
            fetch(f"{old_ingress}/productpage", timeout_s=2)
        pods = {fetch(f"{testbed.ingress_url}{REVIEWS_API}").json()["podname"].split("-")[1] for _ in range(6)}
        assert pods == {"v1", "v2", "v3"}  # productpage takes turns over the instances itself
        assert b"Book Details" in fetch(f"{testbed.ingress_url}/productpage").body
        apps = {
            json.loads(fetch(f"http://127.0.0.1:{p.app}/_testbed/info").body)["pid"] for p in ports.instances.values()
        }
        assert apps == {p["pid"] for p in testbed.status()["processes"] if p["kind"] == "app"}
    finally:
        testbed.apply("sidecar")
    assert testbed.ingress_url == old_ingress and fetch(f"{old_ingress}/productpage").status == 200
    # the applications were never restarted
    assert {
        json.loads(fetch(f"http://127.0.0.1:{p.app}/_testbed/info").body)["pid"] for p in ports.instances.values()
    } == apps


@in_topologies(*where("lb-random"))
def test_load_balancing_policies(testbed, topology):
    testbed.apply("lb-random")
    pods = [fetch(f"{testbed.ingress_url}{REVIEWS_API}").json()["podname"] for _ in range(45)]
    assert len(set(pods)) == 3
    assert any(pods[i] == pods[i + 1] for i in range(len(pods) - 1))  # not a rotation
    testbed.apply("lb-least-request")
    config = (testbed.folder.config_dir / f"{testbed.proxy_of('productpage-v1')}.cfg").read_text()
    assert "backend to_reviews\n    balance leastconn" in config
    distinct = {fetch(f"{testbed.ingress_url}{REVIEWS_API}").json()["podname"] for _ in range(9)}
    assert len(distinct) == 3


def _logged(testbed, proxy: str, request_id: str) -> list[dict]:
    return [
        json.loads(line)
        for line in (testbed.folder.logs_dir / f"{proxy}.log").read_text().splitlines()
        if request_id in line
    ]


@in_topologies(*where("access-log"))
def test_access_log_follows_one_request_through_every_hop(testbed, topology):
    testbed.apply("access-log", {"format": "json"})
    base = testbed.ingress_url
    cookie = login(base, "jason")
    request_id = f"trace-{time.monotonic_ns()}"
    assert fetch(f"{base}/productpage", headers={"cookie": cookie, "x-request-id": request_id}).status == 200
    # the hops that have a proxy in this topology: the gateway always, productpage's and details' own
    hops = [proxy for proxy in ("ingress-gateway", *map(testbed.proxy_of, ("productpage-v1", "details-v1"))) if proxy]
    assert len(hops) == (1 if topology == INGRESS_ONLY else 3)
    deadline = time.monotonic() + 5
    lines: dict[str, list[dict]] = {}
    while time.monotonic() < deadline:
        lines = {proxy: _logged(testbed, proxy, request_id) for proxy in hops}
        if all(lines.values()):
            break
        time.sleep(0.05)
    assert all(lines.values()), {name: len(found) for name, found in lines.items()}
    gateway = lines["ingress-gateway"][0]
    assert gateway["proxy"] == "gateway" and gateway["path"] == "/productpage" and gateway["status"] == 200
    if topology == INGRESS_ONLY:
        return  # productpage calls details and reviews directly: no other proxy sees the request
    reviews_proxies = {testbed.proxy_of(instance.name) for instance in instances_of("reviews")}
    reviews_hops = [hop for proxy in sorted(reviews_proxies) for hop in _logged(testbed, proxy, request_id)]
    assert any(hop["path"] == "/reviews/0" and hop["end_user"] == "jason" for hop in reviews_hops)
    details_proxy = testbed.proxy_of("details-v1")
    details_hop = next(
        entry
        for entry in lines[details_proxy]
        if entry["proxy"].startswith("inbound") and entry["path"] == "/details/0"
    )
    assert details_hop["status"] == 200
    assert details_hop["end_user"] == "jason"  # productpage added it from the session


@in_topologies(*where("sidecar"))
def test_sampling_reports_what_the_mesh_costs(testbed, topology):
    testbed.apply("sidecar")
    mesh = LocalTestbedMesh(testbed.folder.root)
    assert mesh.current_function() == "sidecar" and "circuit-breaker" in mesh.functions()
    sampling = mesh.start_sampling(interval_s=0.25)
    subprocess.run(["wrk", "-t1", "-c4", "-d1s", f"{mesh.ingress_url}/productpage"], check=True, capture_output=True)
    usage = sampling.stop()
    assert usage.mesh == "testbed-haproxy" and usage.function == "sidecar" and not usage.mtls_enabled
    proxies = SERVICE_PROXIES[topology]  # node proxies count as the data plane beside the apps
    assert (usage.sidecar.count, usage.ingress_gateway.count, usage.applications.count) == (proxies, 1, 9)
    assert usage.ingress_gateway.cpu_mcores > 5 and usage.applications.cpu_mcores > 10
    if proxies:
        assert usage.sidecar.cpu_mcores > 10
        assert 0 < usage.sidecar.cpu_mcores <= usage.sidecar.cpu_mcores_max * 1.01 + 1
        assert usage.sidecar.mem_mb > 1
    else:
        assert usage.sidecar.cpu_mcores == 0
    assert usage.applications.mem_mb > usage.ingress_gateway.mem_mb
    assert usage.proxy_version.startswith("HAProxy version 2.")


@in_topologies(SIDECAR)  # a whole run, once: the sampling test covers every topology's counts
def test_a_run_through_the_adapter_reports_the_mesh_cost(testbed, topology, tmp_path):
    from meshload.coordinator.run import RunOptions, execute_run
    from meshload.scenarios.plan import OpenLoop, Plan, Target

    mesh = LocalTestbedMesh(testbed.folder.root)
    mesh.apply("mtls")
    plan = Plan(
        targets=(Target(url=f"{mesh.ingress_url}/productpage"),),
        load=OpenLoop(rate=200),
        duration_s=2.0,
        warmup_s=0.5,
    )
    result = execute_run(plan, RunOptions(workers=1, out_dir=tmp_path / "run", live=False, mesh=mesh))
    assert result.completed > 300 and set(result.status_codes) == {"200"}
    assert result.mesh is not None and result.mesh.function == "mtls" and result.mesh.mtls_enabled
    assert (result.mesh.sidecar.count, result.mesh.applications.count) == (SERVICE_PROXIES[topology], 9)
    smp = json.loads((tmp_path / "run" / "smp.json").read_text())
    assert smp["mesh_config"]["sidecar"]["count"] == SERVICE_PROXIES[topology]
    assert smp["mesh_config"]["mtls_enabled"] is True
    assert smp["mesh_config"]["sidecar"]["cpu_mcores"] > 0


@in_topologies(*where("traffic-split"))
def test_traffic_split_follows_the_weights(testbed, topology):
    caller = testbed.proxy_of("productpage-v1")
    requests = 100
    for weights in ((60, 30, 10), (0, 1, 3)):
        testbed.apply("traffic-split", {"weights": ",".join(map(str, weights))})
        servers = {
            row["svname"]: int(row["weight"]) for row in _stats(testbed, caller) if row["pxname"] == "to_reviews"
        }
        assert servers == {
            "reviews-v1": weights[0],
            "reviews-v2": weights[1],
            "reviews-v3": weights[2],
            "BACKEND": sum(weights),
        }
        pods = [a.json()["podname"] for a in fetch_many(f"{testbed.ingress_url}{REVIEWS_API}", requests, concurrency=4)]
        seen = [sum(pod.startswith(f"reviews-{version}-") for pod in pods) / requests for version in ("v1", "v2", "v3")]
        wanted = [weight / sum(weights) for weight in weights]
        assert seen == pytest.approx(wanted, abs=0.05), (weights, seen)
        assert all(share == 0 for share, weight in zip(seen, weights, strict=True) if weight == 0)
