"""reviews v1/v2/v3 (BookInfo `LibertyRestEndpoint.java`): two reviews, with stars from ratings.

The body is built by string concatenation as in the Java source, so its odd spacing is the wire
format. v1 does not call ratings; v2 (black stars) waits up to 10 s for it, v3 (red stars) 2.5 s.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable

from ..httpclient import Upstream, UpstreamError
from ..httpserver import Request, Response
from .base import B3_HEADERS, FORWARDED_HEADERS, JSON, ServiceApp

STAR_COLOR = {"v1": "", "v2": "black", "v3": "red"}
# connect and read timeouts of the JAX-RS client: 10 s for black stars, 2.5 s otherwise
RATINGS_TIMEOUT_S = {"black": 10.0, "red": 2.5}

_REVIEW_1 = (
    '{  "reviewer": "Reviewer1",  "text": "An extremely entertaining play by Shakespeare. '
    'The slapstick humour is refreshing!"'
)
_REVIEW_2 = (
    '{  "reviewer": "Reviewer2",  "text": "Absolutely fun and entertaining. '
    'The play lacks thematic depth when compared to other plays by Shakespeare."'
)
_RATING_ERROR = ', "rating": {"error": "Ratings service is currently unavailable"}'
_HEALTHY = Response(200, b'{"status": "Reviews is healthy"}', JSON)
_NOT_FOUND = Response(404, b"", "text/plain")
_PROPAGATED = FORWARDED_HEADERS + B3_HEADERS + ("end-user",)


class ReviewsApp(ServiceApp):
    service = "reviews"

    def __init__(self, version: str, upstreams: dict[str, Upstream], fault_scale: float = 1.0) -> None:
        super().__init__(version, upstreams, fault_scale)
        self.star_color = STAR_COLOR[self.version]
        self.ratings_enabled = bool(self.star_color)
        self.ratings_timeout_s = RATINGS_TIMEOUT_S.get(self.star_color, 2.5)
        self.podname = os.environ.get("HOSTNAME") or f"{self.instance_name}-{os.getpid()}"
        self.clustername = os.environ.get("CLUSTER_NAME") or "null"  # Java's "" + null

    def route(self, request: Request) -> Response | Awaitable[Response]:
        path = request.path
        if path == "/health":
            return _HEALTHY
        if not path.startswith("/reviews/"):
            return _NOT_FOUND
        try:
            product_id = int(path[len("/reviews/") :])
        except ValueError:
            return _NOT_FOUND  # JAX-RS: the {productId:int} template does not match
        if not self.ratings_enabled:
            return Response(200, self._body(product_id, None).encode(), JSON)
        return self._with_ratings(product_id, request.headers)

    async def _with_ratings(self, product_id: int, incoming: dict[str, str]) -> Response:
        headers = {name: incoming[name] for name in _PROPAGATED if name in incoming}
        stars = None
        try:
            status, body = await self.client.get("ratings", f"/ratings/{product_id}", headers, self.ratings_timeout_s)
            if status == 200:
                stars = json.loads(body).get("ratings", {})
        except (UpstreamError, TimeoutError, ValueError, AttributeError):
            stars = None
        return Response(200, self._body(product_id, stars if stars is not None else {}).encode(), JSON)

    def _rating(self, stars: dict | None, reviewer: str) -> str:
        if stars is None:
            return ""
        value = stars.get(reviewer) if isinstance(stars, dict) else None
        if not isinstance(value, int):
            return _RATING_ERROR
        return f', "rating": {{"stars": {value}, "color": "{self.star_color}"}}'

    def _body(self, product_id: int, stars: dict | None) -> str:
        return (
            f'{{"id": "{product_id}","podname": "{self.podname}","clustername": "{self.clustername}",'
            f'"reviews": [{_REVIEW_1}{self._rating(stars, "Reviewer1")}}},'
            f"{_REVIEW_2}{self._rating(stars, 'Reviewer2')}}}]}}"
        )
