"""BookInfo through the ingress and the sidecars: every route answers with its documented shape."""

from __future__ import annotations

import json
import re
import time
from typing import AnyStr

import pytest

from meshload.testbed import TestbedFailure
from meshload.testbed.topology import INSTANCES, Ports

from .client import fetch, login


def _first_group(found: re.Match[AnyStr] | None) -> AnyStr:
    assert found is not None
    return found.group(1)


DETAILS = {
    "id": 0,
    "author": "William Shakespeare",
    "year": 1595,
    "type": "paperback",
    "pages": 200,
    "publisher": "PublisherA",
    "language": "English",
    "ISBN-10": "1234567890",
    "ISBN-13": "123-1234567890",
}


def _ports(testbed) -> Ports:
    return Ports.from_json(testbed.folder.load()["ports"])


def test_every_route_through_the_ingress(testbed):
    base = testbed.ingress_url
    products = fetch(f"{base}/api/v1/products")
    assert products.status == 200 and products.headers["content-type"] == "application/json"
    assert products.body.startswith(b'[{"id": 0, "title": "The Comedy of Errors", "descriptionHtml": ')

    details = fetch(f"{base}/api/v1/products/0")
    assert details.status == 200 and details.json() == DETAILS
    assert b'"author": "William Shakespeare"' in details.body  # productpage re-serialises: ", " and ": "

    ratings = fetch(f"{base}/api/v1/products/0/ratings")
    assert ratings.status == 200 and ratings.json() == {"id": 0, "ratings": {"Reviewer1": 5, "Reviewer2": 4}}

    reviews = fetch(f"{base}/api/v1/products/0/reviews").json()
    assert reviews["id"] == "0" and reviews["clustername"] == "null"
    assert [r["reviewer"] for r in reviews["reviews"]] == ["Reviewer1", "Reviewer2"]

    page = fetch(f"{base}/productpage?u=normal")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    assert b"The Comedy of Errors" in page.body and b"Book Details" in page.body and b"Book Reviews" in page.body
    assert b"PublisherA" in page.body and b"Sign in" in page.body

    css = fetch(f"{base}/static/tailwind/tailwind.css")
    assert css.status == 200 and len(css.body) == 365_680
    assert fetch(f"{base}/static/img/izzy.png").body.startswith(b"\x89PNG")
    # the gateway exposes BookInfo's public paths only
    assert fetch(f"{base}/").status == 404 and fetch(f"{base}/health").status == 404


def test_services_answer_directly_and_through_their_sidecars(testbed):
    ports = _ports(testbed)
    expected = {
        "productpage": (b"Product page is healthy", "/api/v1/products"),
        "details": (b'{"status":"Details is healthy"}', "/details/7"),
        "reviews": (b'{"status": "Reviews is healthy"}', "/reviews/0"),
        "ratings": (b'{"status":"Ratings is healthy"}', "/ratings/0"),
    }
    for instance in INSTANCES:  # BookInfo's; the gRPC ratings replicas: test_testbed_grpc.py
        health, probe = expected[instance.service]
        own = ports.instances[instance.name]
        for port in (own.app, own.inbound):
            assert fetch(f"http://127.0.0.1:{port}/health").body == health
            assert fetch(f"http://127.0.0.1:{port}{probe}").status == 200
    productpage = ports.instances["productpage-v1"].app
    for index in ("/", "/index.html"):  # no downstream calls: the service tree as a table
        page = fetch(f"http://127.0.0.1:{productpage}{index}")
        assert page.status == 200 and b"<th>name</th><td>http://productpage:9080</td>" in page.body
        assert b"http://ratings:9080" in page.body
    details = ports.instances["details-v1"].app
    assert (
        fetch(f"http://127.0.0.1:{details}/details/7").body
        == json.dumps({**DETAILS, "id": 7}, separators=(",", ":")).encode()
    )
    bad = fetch(f"http://127.0.0.1:{details}/details/abc")
    assert bad.status == 400 and bad.json() == {"error": "please provide numeric product id"}
    ratings = ports.instances["ratings-v1"].app
    assert fetch(f"http://127.0.0.1:{ratings}/ratings/abc").status == 400
    stored = fetch(f"http://127.0.0.1:{ratings}/ratings/42", "POST", body=b'{"Reviewer1": 1, "Reviewer2": 2}')
    assert stored.json() == {"id": 42, "ratings": {"Reviewer1": 1, "Reviewer2": 2}}
    assert fetch(f"http://127.0.0.1:{ratings}/ratings/42").json()["ratings"] == {
        "Reviewer1": 1,
        "Reviewer2": 2,
    }


def test_reviews_take_turns_and_show_their_stars(testbed):
    testbed.apply("lb-round-robin")
    seen = [fetch(f"{testbed.ingress_url}/api/v1/products/0/reviews").json() for _ in range(6)]
    pods = [review["podname"] for review in seen]
    assert len(set(pods)) == 3 and all(pods[i] != pods[i + 1] for i in range(5))
    assert pods[:3] == pods[3:]  # a strict rotation
    by_version = {_first_group(re.match(r"reviews-(v\d)", review["podname"])): review for review in seen}
    assert "rating" not in by_version["v1"]["reviews"][0]
    assert by_version["v2"]["reviews"][0]["rating"] == {"stars": 5, "color": "black"}
    assert by_version["v3"]["reviews"][1]["rating"] == {"stars": 4, "color": "red"}
    raw_v1 = fetch(f"http://127.0.0.1:{_ports(testbed).instances['reviews-v1'].app}/reviews/0").body
    assert (
        raw_v1.startswith(b'{"id": "0","podname": "reviews-v1')
        and b'"reviews": [{  "reviewer": "Reviewer1",  "text": ' in raw_v1
    )


def test_login_sets_the_end_user_and_logout_clears_it(testbed):
    base = testbed.ingress_url
    cookie = login(base, "jason")
    page = fetch(f"{base}/productpage", headers={"cookie": cookie})
    assert b"jason" in page.body and b"Sign out" in page.body
    forged = fetch(f"{base}/productpage", headers={"cookie": cookie[:-3] + "abc", "end-user": "jason"})
    assert b"jason" not in forged.body  # a tampered cookie or a client header does not sign anyone in
    logout = fetch(f"{base}/logout", headers={"cookie": cookie, "referer": "/productpage"})
    assert logout.status == 302 and logout.headers["location"] == "/productpage"
    assert "Max-Age=0" in logout.headers["set-cookie"]


def test_ratings_failure_shows_inside_the_page_and_metrics_count_it(testbed):
    base = testbed.ingress_url
    testbed.apply("lb-round-robin")
    try:
        testbed.set_app_mode("ratings", "failing")
        reviews = [fetch(f"{base}/api/v1/products/0/reviews").json() for _ in range(3)]
        rated = [r for r in reviews if not r["podname"].startswith("reviews-v1")]
        assert rated and all(
            review["rating"] == {"error": "Ratings service is currently unavailable"}
            for r in rated
            for review in r["reviews"]
        )
        ratings = fetch(f"{base}/api/v1/products/0/ratings")
        assert ratings.status == 503
        assert ratings.json() == {"error": "Sorry, product ratings are currently unavailable for this book."}
        assert fetch(f"{base}/productpage").status == 200  # always 200: failures stay inside the page
    finally:
        testbed.set_app_mode("ratings", "normal")
    productpage = _ports(testbed).instances["productpage-v1"].app
    metrics = fetch(f"http://127.0.0.1:{productpage}/metrics").body.decode()
    assert 'request_result_total{destination_app="ratings",response_code="503"}' in metrics
    assert re.search(r'request_result_total\{destination_app="details",response_code="200"\} [1-9]', metrics)


def test_ratings_fault_modes_follow_their_phases(testbed):
    ratings = _ports(testbed).instances["ratings-v1"].app
    phase_s = 0.3
    try:
        testbed.set_app_mode("ratings", "unavailable", fault_scale=phase_s / 60)  # 60 s phases -> 0.3 s
        statuses = []
        deadline = time.monotonic() + 4 * phase_s
        while time.monotonic() < deadline:
            statuses.append(fetch(f"http://127.0.0.1:{ratings}/ratings/0").status)
            time.sleep(0.02)
        assert statuses[0] == 200 and 503 in statuses and set(statuses) == {200, 503}
        assert statuses[-1] in (200, 503)
        testbed.set_app_mode("ratings", "unhealthy", fault_scale=phase_s / 900)  # 15 min phases -> 0.3 s
        health = set()
        deadline = time.monotonic() + 4 * phase_s
        while time.monotonic() < deadline:
            answer = fetch(f"http://127.0.0.1:{ratings}/health")
            health.add((answer.status, answer.body))
            assert fetch(f"http://127.0.0.1:{ratings}/ratings/0").status == 200  # only its health fails
            time.sleep(0.02)
        assert health == {
            (200, b'{"status":"Ratings is healthy"}'),
            (500, b'{"status":"Ratings is not healthy"}'),
        }
        testbed.set_app_mode("ratings", "delayed", fault_scale=0.2 / 7)
        delays = [fetch(f"http://127.0.0.1:{ratings}/ratings/0").elapsed_s for _ in range(12)]
        assert max(delays) >= 0.2 and min(delays) < 0.2  # about half are delayed
    finally:
        testbed.set_app_mode("ratings", "normal", fault_scale=1.0)
    with pytest.raises(TestbedFailure, match="ratings has no mode 'sleepy'"):
        testbed.set_app_mode("ratings", "sleepy")
    with pytest.raises(TestbedFailure, match="no BookInfo service or instance named 'frontend'"):
        testbed.set_app_mode("frontend", "failing")


def test_the_package_names_what_it_offers():
    import meshload.testbed as package

    assert sorted(package.__all__) == package.__all__
    assert all(hasattr(package, name) for name in package.__all__)


def test_the_page_weighs_what_bookinfo_sends(testbed):
    # rendered productpage.html sizes in reference/bookinfo.md: 9.4 KB (v1), 15.0 KB (v2/v3), 6.2 KB (errors)
    testbed.apply("lb-round-robin")
    pages = [fetch(f"{testbed.ingress_url}/productpage").body for _ in range(3)]
    by_version = {_first_group(re.search(rb"reviews-(v\d)-", page)).decode(): len(page) for page in pages}
    assert set(by_version) == {"v1", "v2", "v3"}
    assert by_version["v1"] == pytest.approx(9400, rel=0.1)
    assert by_version["v2"] == pytest.approx(15000, rel=0.1) and by_version["v3"] == pytest.approx(15000, rel=0.1)
    try:
        testbed.set_app_mode("details", "failing")
        testbed.set_app_mode("reviews", "failing")
        broken = fetch(f"{testbed.ingress_url}/productpage")
    finally:
        testbed.set_app_mode("details", "normal")
        testbed.set_app_mode("reviews", "normal")
    assert broken.status == 200 and b"Error fetching product reviews" in broken.body
    assert len(broken.body) == pytest.approx(6200, rel=0.1)
