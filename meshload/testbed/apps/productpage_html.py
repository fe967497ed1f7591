"""productpage's HTML (BookInfo `templates/productpage.html` and `index.html`), rendered cheaply.

The page is fixed text around three parts that change: the signed-in user, the details section and
the reviews section. The two sections depend only on the downstream answer, so each is rendered once
per distinct answer and kept in a small cache; a page is then a join of ready byte strings.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from html import escape

CACHE_ENTRIES = 64  # distinct downstream answers remembered (instances x outcomes is far fewer)

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

_HEAD = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="X-UA-Compatible" content="IE=edge">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>Simple Bookstore App</title>
<link rel="stylesheet" href="static/tailwind/tailwind.css">
</head>
<body>
<nav class="bg-gray-800">
  <div class="mx-auto max-w-7xl px-2 sm:px-6 lg:px-8">
    <div class="relative flex h-16 items-center justify-between">
      <div class="flex flex-1 items-center justify-center sm:items-stretch sm:justify-start">
        <div class="flex flex-shrink-0 items-center">
          <img class="h-8 w-auto" src="static/img/izzy.png" alt="Istio">
          <a href="#" class="text-white px-3 py-2 text-xl font-medium">BookInfo Sample</a>
        </div>
      </div>
      <div class="absolute inset-y-0 right-0 flex items-center pr-2 sm:static sm:inset-auto sm:ml-6 sm:pr-0">
"""

_SIGN_IN = """        <button type="button" class="rounded-md bg-blue-600 px-3 py-2 text-sm font-semibold text-white" data-modal-target="login-modal">Sign in</button>
      </div>
    </div>
  </div>
</nav>
<div id="login-modal" class="hidden fixed inset-0 z-50">
  <form method="post" action="login" class="mx-auto mt-24 max-w-sm rounded-lg bg-white p-6 shadow">
    <label for="username" class="block text-sm font-medium text-gray-900">User Name</label>
    <input type="text" id="username" name="username" class="mt-2 block w-full rounded-md border-0 py-1.5 text-gray-900 ring-1 ring-inset ring-gray-300" required>
    <label for="password" class="mt-4 block text-sm font-medium text-gray-900">Password</label>
    <input type="password" id="password" name="passwd" class="mt-2 block w-full rounded-md border-0 py-1.5 text-gray-900 ring-1 ring-inset ring-gray-300">
    <button type="submit" class="mt-6 w-full rounded-md bg-blue-600 px-3 py-1.5 text-sm font-semibold text-white">Sign in</button>
  </form>
</div>
"""

_SIGNED_IN = """        <span class="text-white px-3 py-2 text-sm font-medium">{user}</span>
        <a href="logout" class="rounded-md bg-gray-900 px-3 py-2 text-sm font-medium text-white">Sign out</a>
      </div>
    </div>
  </div>
</nav>
"""

_PRODUCT = f"""<div class="mx-auto max-w-7xl px-4 sm:px-6 lg:px-8">
  <div class="mx-auto max-w-3xl py-8">
    <h1 class="text-5xl font-bold text-center text-gray-900">{escape(PRODUCT["title"])}</h1>
    <p class="mt-6 text-lg leading-8 text-gray-600">Summary: {PRODUCT["descriptionHtml"]}</p>
  </div>
  <div class="grid grid-cols-1 gap-8 md:grid-cols-2">
"""

_TAIL = """  </div>
</div>
<script>
document.querySelectorAll('[data-modal-target]').forEach(function (button) {
  button.addEventListener('click', function () {
    document.getElementById(button.getAttribute('data-modal-target')).classList.toggle('hidden');
  });
});
</script>
</body>
</html>
"""

_DETAIL_FIELDS = (
    ("Type", "type"),
    ("Pages", "pages"),
    ("Publisher", "publisher"),
    ("Language", "language"),
    ("ISBN-10", "ISBN-10"),
    ("ISBN-13", "ISBN-13"),
)


def _details_section(status: int, details: dict) -> str:
    if status != 200:
        return (
            '    <div class="details">\n      <h4 class="text-2xl font-bold">Error fetching product details!</h4>\n'
            f"      <p>{escape(str(details.get('error', '')))}</p>\n    </div>\n"
        )
    rows = "".join(
        f'        <dt class="font-semibold text-gray-900">{label}:</dt>\n'
        f'        <dd class="text-gray-700">{escape(str(details.get(key, "")))}</dd>\n'
        for label, key in _DETAIL_FIELDS
    )
    return (
        '    <div class="details">\n      <h4 class="text-2xl font-bold text-gray-900">Book Details</h4>\n'
        f'      <dl class="mt-4 grid grid-cols-2 gap-x-4 gap-y-2">\n{rows}      </dl>\n    </div>\n'
    )


def _stars(rating: dict) -> str:
    if "error" in rating:
        return f'        <p class="text-red-600">{escape(str(rating["error"]))}</p>\n'
    stars = int(rating.get("stars", 0))
    color = escape(str(rating.get("color", "black")))
    full = f'<span class="star" style="color: {color}">&#9733;</span>' * stars
    empty = f'<span class="star" style="color: {color}">&#9734;</span>' * (5 - stars)
    return f'        <p class="mt-2">{full}{empty}</p>\n'


def _reviews_section(status: int, reviews: dict) -> str:
    if status != 200:
        return (
            '    <div class="reviews">\n      <h4 class="text-2xl font-bold">Error fetching product reviews!</h4>\n'
            f"      <p>{escape(str(reviews.get('error', '')))}</p>\n    </div>\n"
        )
    items = []
    for review in reviews.get("reviews", []):
        rating = review.get("rating")
        items.append(
            '      <blockquote class="mt-6 border-l-4 border-gray-300 pl-4">\n'
            f'        <p class="text-gray-800">{escape(str(review.get("text", "")))}</p>\n'
            f'        <small class="text-gray-500">{escape(str(review.get("reviewer", "")))}</small>\n'
            + (_stars(rating) if isinstance(rating, dict) else "")
            + "      </blockquote>\n"
        )
    podname = escape(str(reviews.get("podname", "")))
    clustername = escape(str(reviews.get("clustername", "")))
    return (
        '    <div class="reviews">\n      <h4 class="text-2xl font-bold text-gray-900">Book Reviews</h4>\n'
        + "".join(items)
        + f'      <dl class="mt-4 text-xs text-gray-400"><dt>Reviews served by:</dt><dd>{podname}</dd>'
        + (f"<dd>{clustername}</dd>" if clustername != "null" else "")
        + "</dl>\n    </div>\n"
    )


class SectionCache:
    """Rendered sections keyed by the downstream answer, bounded, least recently used out first."""

    def __init__(self, render, entries: int = CACHE_ENTRIES) -> None:
        self._render = render
        self._entries = entries
        self._cache: OrderedDict[tuple[int, bytes], bytes] = OrderedDict()

    def get(self, status: int, body: bytes, fallback: dict) -> bytes:
        key = (status, body)
        section = self._cache.get(key)
        if section is not None:
            self._cache.move_to_end(key)
            return section
        try:
            payload = json.loads(body) if status == 200 else fallback
        except ValueError:
            payload = fallback
        if not isinstance(payload, dict):
            payload = fallback
        section = self._render(status, payload).encode()
        self._cache[key] = section
        if len(self._cache) > self._entries:
            self._cache.popitem(last=False)
        return section


class ProductPageRenderer:
    """Assembles productpage.html from ready parts."""

    def __init__(self) -> None:
        self.details = SectionCache(_details_section)
        self.reviews = SectionCache(_reviews_section)
        self._head = _HEAD.encode()
        self._sign_in = _SIGN_IN.encode()
        self._product = _PRODUCT.encode()
        self._tail = _TAIL.encode()

    def page(self, user: str, details_section: bytes, reviews_section: bytes) -> bytes:
        nav = _SIGNED_IN.format(user=escape(user)).encode() if user else self._sign_in
        return b"".join((self._head, nav, self._product, details_section, reviews_section, self._tail))


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
