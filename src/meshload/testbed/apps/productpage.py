"""productpage v1 (BookInfo `src/productpage/productpage.py`): the page, the API, login and logout.

It calls details, then reviews, one after the other, each attempt with a 3 s timeout; reviews gets a
second attempt after any non-200 answer (kept in BookInfo on purpose for the fault-injection task).
The signed-in user lives in a signed `session` cookie and is sent downstream as `end-user`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import parse_qs

from ..httpclient import Upstream, UpstreamError
from ..httpserver import Request, Response
from .base import FORWARDED_HEADERS, JSON, ServiceApp
from .productpage_html import PRODUCT, ProductPageRenderer, index_page

CALL_TIMEOUT_S = 3.0
REVIEWS_ATTEMPTS = 2
SECRET_KEY = b'_5#y2L"F4Q8z\n\xec]/'  # hard-coded in BookInfo too: any replica accepts any cookie
SESSION_COOKIE = "session"
TAILWIND_CSS_BYTES = 365_680  # size of BookInfo's static/tailwind/tailwind.css (Tailwind's in-browser build)
PAGE_STYLES = Path(__file__).parent / "static" / "bookinfo.css"
# the smallest valid PNG (1x1, transparent), standing in for static/img/izzy.png
IZZY_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)

DETAILS_ERROR = {"error": "Sorry, product details are currently unavailable for this book."}
REVIEWS_ERROR = {"error": "Sorry, product reviews are currently unavailable for this book."}
RATINGS_ERROR = {"error": "Sorry, product ratings are currently unavailable for this book."}

SERVICE_TREE = {
    "name": "http://productpage:9080",
    "endpoint": "details",
    "children": [
        {"name": "http://details:9080", "endpoint": "details", "children": []},
        {
            "name": "http://reviews:9080",
            "endpoint": "reviews",
            "children": [{"name": "http://ratings:9080", "endpoint": "ratings", "children": []}],
        },
    ],
}

_HEALTHY = Response(200, b"Product page is healthy", "text/html; charset=utf-8")
_NOT_FOUND = Response(404, b"Not Found", "text/html; charset=utf-8")
_B3_REINJECTED = ("x-b3-traceid", "x-b3-spanid", "x-b3-sampled")
_PRODUCTS_BODY = json.dumps([PRODUCT]).encode()  # simplejson's ", " and ": " separators
_HTML = "text/html; charset=utf-8"


def sign_session(user: str) -> str:
    payload = base64.urlsafe_b64encode(json.dumps({"user": user}).encode()).decode().rstrip("=")
    signature = hmac.new(SECRET_KEY, payload.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{payload}.{signature}"


def session_user(cookie_header: str) -> str:
    """The user in a valid session cookie, or "" (no cookie, tampered, or signed out)."""
    for part in cookie_header.split(";"):
        name, _, value = part.strip().partition("=")
        if name != SESSION_COOKIE or "." not in value:
            continue
        payload, _, signature = value.rpartition(".")
        expected = hmac.new(SECRET_KEY, payload.encode(), hashlib.sha256).hexdigest()[:32]
        if not hmac.compare_digest(signature, expected):
            return ""
        try:
            data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except ValueError:
            return ""
        return str(data.get("user", "")) if isinstance(data, dict) else ""
    return ""


def tailwind_stand_in() -> bytes:
    """What the testbed serves as static/tailwind/tailwind.css: BookInfo loads that file as a script
    (Tailwind's in-browser build, which styles the page from its classes); this one adds the page's
    rules from bookinfo.css instead, padded with spaces to the real file's size."""
    script = (
        "/* meshload testbed: stands in for Tailwind's in-browser build, at its size */\n"
        "(() => {\n  const style = document.createElement('style');\n"
        f"  style.textContent = {json.dumps(PAGE_STYLES.read_text())};\n"
        "  document.head.appendChild(style);\n})();\n"
    ).encode()
    if len(script) > TAILWIND_CSS_BYTES:
        raise ValueError(f"{PAGE_STYLES} is larger than the file it stands in for")
    return script + b" " * (TAILWIND_CSS_BYTES - len(script))


class ProductPageApp(ServiceApp):
    service = "productpage"

    def __init__(self, version: str, upstreams: dict[str, Upstream], fault_scale: float = 1.0) -> None:
        super().__init__(version, upstreams, fault_scale)
        self.renderer = ProductPageRenderer(DETAILS_ERROR, REVIEWS_ERROR)
        self.index = Response(200, index_page(SERVICE_TREE), _HTML)
        self._tailwind: Response | None = None
        # request_result{destination_app, response_code}: a handful of label pairs at most
        self.request_results: dict[tuple[str, int], int] = {}

    def route(self, request: Request) -> Response | Awaitable[Response]:  # noqa: PLR0911 - a return per route
        path = request.path
        method = request.method
        if path == "/productpage" and method == "GET":
            return self._front(request)
        if path.startswith("/api/v1/products") and method == "GET":
            return self._api(request, path[len("/api/v1/products") :])
        if path in ("/", "/index.html"):
            return self.index
        if path == "/health":
            return _HEALTHY
        if path == "/login" and method == "POST":
            return self._login(request)
        if path == "/logout":
            return self._redirect(
                request,
                [
                    (
                        "set-cookie",
                        f"{SESSION_COOKIE}=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/",
                    )
                ],
            )
        if path == "/metrics":
            return self._metrics()
        if path.startswith("/static/"):
            return self._static(path)
        return _NOT_FOUND

    # downstream calls -------------------------------------------------------------------------

    def _forward_headers(self, request: Request) -> dict[str, str]:
        incoming = request.headers
        headers = {name: incoming[name] for name in _B3_REINJECTED if name in incoming}
        for name in FORWARDED_HEADERS:
            if name in incoming:
                headers[name] = incoming[name]
        user = session_user(incoming.get("cookie", ""))
        if user:
            headers["end-user"] = user  # only from the session, never from the client's header
        return headers

    def _count(self, app: str, status: int) -> None:
        key = (app, status)
        self.request_results[key] = self.request_results.get(key, 0) + 1

    async def _call(self, service: str, product_id: int, headers: dict[str, str]) -> tuple[int | None, bytes]:
        try:
            return await self.client.get(service, f"/{service}/{product_id}", headers, CALL_TIMEOUT_S)
        except (UpstreamError, TimeoutError):
            return None, b""

    async def _downstream(
        self, service: str, product_id: int, headers: dict[str, str], attempts: int = 1
    ) -> tuple[int, bytes]:
        """Call `service` up to `attempts` times until it answers 200, as productpage does; the
        status of the last attempt (500 when there was no answer) and the body on success."""
        status: int | None = None
        for _ in range(attempts):
            status, body = await self._call(service, product_id, headers)
            if status == 200:
                self._count(service, 200)
                return 200, body
        status = status or 500
        self._count(service, status)
        return status, b""

    async def _details(self, product_id: int, headers: dict[str, str]) -> tuple[int, bytes]:
        return await self._downstream("details", product_id, headers)

    async def _reviews(self, product_id: int, headers: dict[str, str]) -> tuple[int, bytes]:
        # BookInfo's app-level second attempt on reviews, left in for the fault-injection tasks.
        return await self._downstream("reviews", product_id, headers, attempts=REVIEWS_ATTEMPTS)

    async def _ratings(self, product_id: int, headers: dict[str, str]) -> tuple[int, bytes]:
        return await self._downstream("ratings", product_id, headers)

    # routes -----------------------------------------------------------------------------------

    async def _front(self, request: Request) -> Response:
        product_id = 0  # hard-coded in BookInfo; the query string is ignored
        headers = self._forward_headers(request)
        user = session_user(request.headers.get("cookie", ""))
        details_status, details_body = await self._details(product_id, headers)
        reviews_status, reviews_body = await self._reviews(product_id, headers)
        page = self.renderer.page(user, (details_status, details_body), (reviews_status, reviews_body))
        return Response(200, page, _HTML)

    def _api(self, request: Request, rest: str) -> Response | Awaitable[Response]:
        if rest in ("", "/"):
            return Response(200, _PRODUCTS_BODY, JSON)
        parts = rest.strip("/").split("/")
        try:
            product_id = int(parts[0])
        except ValueError:
            return _NOT_FOUND
        if len(parts) == 1:
            return self._api_call(self._details, product_id, request, DETAILS_ERROR)
        if len(parts) == 2 and parts[1] == "reviews":
            return self._api_call(self._reviews, product_id, request, REVIEWS_ERROR)
        if len(parts) == 2 and parts[1] == "ratings":
            return self._api_call(self._ratings, product_id, request, RATINGS_ERROR)
        return _NOT_FOUND

    async def _api_call(
        self,
        call: Callable[[int, dict[str, str]], Awaitable[tuple[int, bytes]]],
        product_id: int,
        request: Request,
        error: dict,
    ) -> Response:
        status, body = await call(product_id, self._forward_headers(request))
        if status != 200:
            return Response(status, json.dumps(error).encode(), JSON)
        try:
            # productpage re-serialises the answer (json.dumps), so separators become ", " / ": "
            return Response(200, json.dumps(json.loads(body)).encode(), JSON)
        except ValueError:
            return Response(500, json.dumps(error).encode(), JSON)

    def _login(self, request: Request) -> Response:
        form = parse_qs(request.body.decode("utf-8", "replace"))
        user = form.get("username", [""])[0]
        cookie = f"{SESSION_COOKIE}={sign_session(user)}; HttpOnly; Path=/"
        return self._redirect(request, [("set-cookie", cookie)])

    @staticmethod
    def _redirect(request: Request, headers: list[tuple[str, str]]) -> Response:
        target = request.headers.get("referer") or "/"
        body = f'<a href="{target}">{target}</a>'.encode()
        return Response(302, body, _HTML, [("location", target), *headers])

    def _metrics(self) -> Response:
        lines = [
            "# HELP request_result_total Request result",
            "# TYPE request_result_total counter",
        ]
        for (app, code), count in sorted(self.request_results.items()):
            lines.append(f'request_result_total{{destination_app="{app}",response_code="{code}"}} {float(count)}')
        return Response(200, ("\n".join(lines) + "\n").encode(), "text/plain; version=0.0.4; charset=utf-8")

    def _static(self, path: str) -> Response:
        if path == "/static/tailwind/tailwind.css":
            if self._tailwind is None:
                self._tailwind = Response(200, tailwind_stand_in(), "text/css; charset=utf-8")
            return self._tailwind
        if path == "/static/img/izzy.png":
            return Response(200, IZZY_PNG, "image/png")
        return _NOT_FOUND
