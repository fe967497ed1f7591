"""details v1 (BookInfo `src/details/details.rb`): the book's details as compact JSON."""

from __future__ import annotations

from ..httpserver import Request, Response
from .base import JSON, ServiceApp

_HEALTHY = Response(200, b'{"status":"Details is healthy"}', JSON)
_BAD_ID = Response(400, b'{"error":"please provide numeric product id"}', JSON)
_NOT_FOUND = Response(404, b"", "text/html")
_DETAILS = (
    '{"id":%d,"author":"William Shakespeare","year":1595,"type":"paperback","pages":200,'
    '"publisher":"PublisherA","language":"English","ISBN-10":"1234567890","ISBN-13":"123-1234567890"}'
)


class DetailsApp(ServiceApp):
    service = "details"

    def route(self, request: Request) -> Response:
        path = request.path
        if path == "/health":
            return _HEALTHY
        if path.startswith("/details/"):
            try:
                product_id = int(path.rsplit("/", 1)[-1])
            except ValueError:
                return _BAD_ID
            return Response(200, (_DETAILS % product_id).encode(), JSON)
        return _NOT_FOUND
