"""ratings v1 (BookInfo `src/ratings/ratings.js`) with its fault modes.

The modes are the images `v-faulty` (half the requests get 503), `v-delayed` (half are delayed 7 s),
`v-unavailable` (unavailable every other 60 s) and `v-unhealthy` (health fails every other 15 min).
`fault_scale` multiplies the 7 s / 60 s / 15 min constants so tests can use them in seconds.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections.abc import Awaitable

from ..httpclient import Upstream
from ..httpserver import Request, Response
from ..topology import RATINGS_MODES
from .base import JSON, ServiceApp

DELAY_S = 7.0
UNAVAILABLE_PHASE_S = 60.0
UNHEALTHY_PHASE_S = 15 * 60.0
MAX_STORED_PRODUCTS = 1000  # POSTed ratings kept in memory; older ones are dropped

_RATINGS_PATH = re.compile(r"^/ratings/[0-9]*")
_HEALTHY = Response(200, b'{"status":"Ratings is healthy"}', JSON)
_UNHEALTHY = Response(500, b'{"status":"Ratings is not healthy"}', JSON)
_UNAVAILABLE = Response(503, b'{"error":"Service unavailable"}', JSON)
_BAD_ID = Response(400, b'{"error":"please provide numeric product ID"}', JSON)
_NOT_FOUND = Response(404, b'{"error":"Not found"}', JSON)
_DEFAULT_RATINGS = {"Reviewer1": 5, "Reviewer2": 4}


class RatingsApp(ServiceApp):
    service = "ratings"
    modes = RATINGS_MODES

    def __init__(self, version: str, upstreams: dict[str, Upstream], fault_scale: float = 1.0) -> None:
        super().__init__(version, upstreams, fault_scale)
        self._stored: dict[int, dict] = {}
        self._mode_since_s = time.monotonic()

    def set_mode(self, mode: str) -> None:
        super().set_mode(mode)
        self._mode_since_s = time.monotonic()

    def _in_bad_phase(self, phase_s: float) -> bool:
        # The first phase is the good one, as with a freshly started image.
        elapsed_s = time.monotonic() - self._mode_since_s
        return int(elapsed_s / (phase_s * self.fault_scale)) % 2 == 1

    def route(self, request: Request) -> Response | Awaitable[Response]:  # noqa: PLR0911 - a return per route
        path = request.path
        if path == "/health":
            if self.mode == "unhealthy" and self._in_bad_phase(UNHEALTHY_PHASE_S):
                return _UNHEALTHY
            return _HEALTHY
        if not _RATINGS_PATH.match(path):
            return _NOT_FOUND
        try:
            product_id = int(path.rsplit("/", 1)[-1])
        except ValueError:
            return _BAD_ID
        if request.method == "POST":
            return self._store(product_id, request.body)
        if self.mode == "faulty" and random.random() < 0.5:
            return _UNAVAILABLE
        if self.mode == "unavailable" and self._in_bad_phase(UNAVAILABLE_PHASE_S):
            return _UNAVAILABLE
        response = self._ratings(product_id)
        if self.mode == "delayed" and random.random() < 0.5:
            return self._later(response, DELAY_S * self.fault_scale)
        return response

    def _ratings(self, product_id: int) -> Response:
        ratings = self._stored.get(product_id, _DEFAULT_RATINGS)
        body = json.dumps({"id": product_id, "ratings": ratings}, separators=(",", ":"))
        return Response(200, body.encode(), JSON)

    def _store(self, product_id: int, body: bytes) -> Response:
        try:
            ratings = json.loads(body)
        except ValueError:
            return Response(400, b'{"error":"please provide valid ratings JSON"}', JSON)
        if len(self._stored) >= MAX_STORED_PRODUCTS:
            self._stored.pop(next(iter(self._stored)))
        self._stored[product_id] = ratings
        return self._ratings(product_id)

    @staticmethod
    async def _later(response: Response, delay_s: float) -> Response:
        await asyncio.sleep(delay_s)
        return response
