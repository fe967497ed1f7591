"""BookInfo as a user journey, for meshload's local testbed (or any BookInfo behind an ingress that
routes what Istio's `bookinfo-gateway` routes: /productpage, /login, /logout, /api/v1/products).

    meshload testbed up
    locust -f $(python -m meshload.locust --path bookinfo) --host http://127.0.0.1:INGRESS_PORT

One task is one visit, in the order a person goes: the product page anonymously, sign in as `jason`
(productpage keeps the user in a signed session cookie and sends `end-user: jason` downstream, which
BookInfo's end-user routing and fault rules match), the product page as jason, the JSON API (the
product list, its details, reviews and ratings), and sign out. Every step checks
what it got, so a page that answers 200 with the wrong content counts as a failure.

Pacing: with `MESHLOAD_BOOKINFO_RATE` set (visits per second, all users and workers together) the
visits are open loop (`meshload.locust.open_loop`, arrivals by `MESHLOAD_BOOKINFO_ARRIVAL`, constant
or poisson); without it each user pauses `MESHLOAD_BOOKINFO_THINK_S` seconds (default 1) between
visits, a closed loop.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser

import meshload.locust

USER = "jason"
PRODUCT_ID = 0


def _wait_time() -> Callable[..., float]:
    rate = os.environ.get("MESHLOAD_BOOKINFO_RATE", "").strip()
    if rate:
        arrival = os.environ.get("MESHLOAD_BOOKINFO_ARRIVAL", "constant").strip() or "constant"
        return meshload.locust.open_loop(float(rate), arrival=arrival)  # type: ignore[arg-type]
    return constant(float(os.environ.get("MESHLOAD_BOOKINFO_THINK_S", "1")))


class BookInfoVisitor(FastHttpUser):
    """A visitor who looks around, signs in as jason, reads the API and signs out."""

    wait_time = _wait_time()

    @task
    def visit(self) -> None:
        self._get("/productpage", "anonymous: /productpage", b"Sign in")
        self._sign_in()
        self._get("/productpage", f"{USER}: /productpage", f">{USER}<".encode(), b"Sign out")
        self._get("/api/v1/products", "api: products", b"The Comedy of Errors")
        self._get(f"/api/v1/products/{PRODUCT_ID}", "api: details", b'"id"')
        self._get(f"/api/v1/products/{PRODUCT_ID}/reviews", "api: reviews", b'"reviews"')
        self._get(f"/api/v1/products/{PRODUCT_ID}/ratings", "api: ratings", b'"ratings"')
        self._sign_out()

    def _get(self, path: str, name: str, *expected: bytes) -> None:
        """GET `path`; a 200 without each `expected` in its body is a failure (bad statuses fail anyway)."""
        with self.client.get(path, name=name, catch_response=True) as response:
            missing = [part.decode() for part in expected if part not in (response.content or b"")]
            if response.status_code == 200 and missing:
                response.failure(f"{path}: {', '.join(map(repr, missing))} not in the answer")

    def _sign_in(self) -> None:
        with self.client.post(
            "/login",
            data=f"username={USER}&passwd=",
            headers={"Content-Type": "application/x-www-form-urlencoded", "Referer": "/productpage"},
            name="sign in",
            allow_redirects=False,
            catch_response=True,
        ) as response:
            if response.status_code != 302 or "session=" not in (response.headers.get("set-cookie") or ""):
                response.failure(f"sign in answered {response.status_code} without a session cookie")
            else:
                response.success()

    def _sign_out(self) -> None:
        with self.client.get(
            "/logout", headers={"Referer": "/"}, name="sign out", allow_redirects=False, catch_response=True
        ) as response:
            if response.status_code == 302:
                response.success()
            else:
                response.failure(f"sign out answered {response.status_code}")
