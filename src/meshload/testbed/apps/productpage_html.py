"""productpage's HTML: `templates/productpage.html` (BookInfo's page as users see it) and index.html.

The page depends only on the signed-in user and the two downstream answers (details, reviews), so
each distinct combination is rendered once with Jinja2 and kept in a small cache: serving a page is
then a dictionary look-up, and the application stays cheap next to the proxies being measured.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from html import escape
from pathlib import Path

import jinja2

CACHE_ENTRIES = 64  # distinct (user, details answer, reviews answer) kept; instances x outcomes is far fewer
TEMPLATES = Path(__file__).parent / "templates"

PRODUCT = {
    "id": 0,
    "title": "The Comedy of Errors",
    "descriptionHtml": (
        '<a href="https://en.wikipedia.org/wiki/The_Comedy_of_Errors">Wikipedia Summary</a>: The Comedy of '
        "Errors is one of <b>William Shakespeare's</b> early plays. It is his shortest and one of his most "
        "farcical comedies, with a major part of the humour coming from slapstick and mistaken identity, in "
        "addition to puns and word play."
    ),
}

# The sign-in dialog's sailboat: hull, main sail, head sail (x y pairs in a 320 x 320 box).
SAILBOAT = {
    "hull": "78 248 242 248 142 280 78 248",
    "mainsail": "82 238 138 229 138 122 82 238",
    "headsail": "151 229 238 238 151 44 151 229",
}


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def star_path(box: float, outer_share: float, rounding: float = 0.12) -> str:
    """SVG path data of a five-pointed star centred in a `box` x `box` view box, its tips at
    `outer_share` of the box from the centre, every corner rounded: a line to a point `rounding` of
    the way along each edge, then a quadratic curve through the corner."""
    outer = box * outer_share
    inner = outer * 0.45
    cx, cy = box / 2, box * 0.52
    corners = [
        (cx + radius * math.sin(k * math.pi / 5), cy - radius * math.cos(k * math.pi / 5))
        for k, radius in ((k, outer if k % 2 == 0 else inner) for k in range(10))
    ]

    def toward(a: tuple[float, float], b: tuple[float, float]) -> str:
        return f"{_number(a[0] + (b[0] - a[0]) * rounding)} {_number(a[1] + (b[1] - a[1]) * rounding)}"

    parts = []
    for k, corner in enumerate(corners):
        before, after = corners[k - 1], corners[(k + 1) % len(corners)]
        parts.append(
            f"{'M' if k == 0 else 'L'}{toward(corner, before)}"
            f"Q{_number(corner[0])} {_number(corner[1])} {toward(corner, after)}"
        )
    return "".join(parts) + "Z"


STAR_FULL = star_path(20, 0.47)  # drawn filled, 20 x 20
STAR_OUTLINE = star_path(24, 0.40)  # drawn as a 1.5-wide outline, 24 x 24


def _answer(status: int, body: bytes, fallback: dict) -> tuple[int, dict]:
    """What the template gets for a downstream answer: its JSON, or the error text for a failure."""
    if status != 200:
        return status, fallback
    try:
        payload = json.loads(body)
    except ValueError:
        return 500, fallback
    return (200, payload) if isinstance(payload, dict) else (500, fallback)


class ProductPageRenderer:
    """productpage.html for a user and the details and reviews answers, rendered once per distinct
    combination (least recently used out first)."""

    def __init__(self, details_error: dict, reviews_error: dict, entries: int = CACHE_ENTRIES) -> None:
        environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, auto_reload=False)
        self._template = environment.get_template("productpage.html")
        self._errors = (details_error, reviews_error)
        self._entries = entries
        self._cache: OrderedDict[tuple[str, int, bytes, int, bytes], bytes] = OrderedDict()

    def page(self, user: str, details: tuple[int, bytes], reviews: tuple[int, bytes]) -> bytes:
        """The page for `user` ("" when signed out) and the (status, body) of each downstream call."""
        key = (user, *details, *reviews)
        page = self._cache.get(key)
        if page is not None:
            self._cache.move_to_end(key)
            return page
        details_status, details_payload = _answer(*details, self._errors[0])
        reviews_status, reviews_payload = _answer(*reviews, self._errors[1])
        page = self._template.render(
            user=user,
            product=PRODUCT,
            details_status=details_status,
            details=details_payload,
            reviews_status=reviews_status,
            reviews=reviews_payload,
            star_full=STAR_FULL,
            star_outline=STAR_OUTLINE,
            sailboat=SAILBOAT,
        ).encode()
        self._cache[key] = page
        if len(self._cache) > self._entries:
            self._cache.popitem(last=False)
        return page


def index_page(services: dict) -> bytes:
    """index.html: the service tree as json2html would draw it (a nested table)."""

    def table(value: object) -> str:
        if isinstance(value, dict):
            rows = "".join(f"<tr><th>{escape(str(k))}</th><td>{table(v)}</td></tr>" for k, v in value.items())
            return f'<table border="1">{rows}</table>'
        if isinstance(value, list):
            return "<ul>" + "".join(f"<li>{table(v)}</li>" for v in value) + "</ul>"
        return escape(str(value))

    return (
        "<!DOCTYPE html>\n<html>\n<head>\n<title>Simple Bookstore App</title>\n"
        '<link rel="stylesheet" href="static/tailwind/tailwind.css">\n</head>\n<body>\n'
        '<div class="mx-auto max-w-7xl p-8">\n<h3 class="text-3xl font-bold">Hello! This is a simple bookstore '
        "application consisting of three services as shown below</h3>\n"
        f"{table(services)}\n"
        '<p><a href="productpage?u=normal">Normal user</a></p>\n'
        '<p><a href="productpage?u=test">Test user</a></p>\n</div>\n</body>\n</html>\n'
    ).encode()
