"""productpage's HTML (BookInfo `templates/productpage.html` and `index.html`), rendered cheaply.

The page is fixed text around three parts that change: the signed-in user, the details section and
the reviews section. The two sections depend only on the downstream answer, so each is rendered once
per distinct answer and kept in a small cache; a page is then a join of ready byte strings.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from html import escape
from typing import Any

CACHE_ENTRIES = 64  # distinct downstream answers remembered (instances x outcomes is far fewer)

PRODUCT: dict[str, Any] = {
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
<meta name="description" content="BookInfo: one book's details and reviews, served by four services">
<title>Simple Bookstore App</title>
<link rel="icon" type="image/png" href="static/img/izzy.png">
<link rel="stylesheet" href="static/tailwind/tailwind.css">
</head>
<body class="min-h-full bg-gray-100">
<nav class="bg-gray-800">
  <div class="mx-auto max-w-7xl px-2 sm:px-6 lg:px-8">
    <div class="relative flex h-16 items-center justify-between">
      <div class="absolute inset-y-0 left-0 flex items-center sm:hidden">
        <button type="button" class="relative inline-flex items-center justify-center rounded-md p-2 text-gray-400 hover:bg-gray-700 hover:text-white focus:outline-none focus:ring-2 focus:ring-inset focus:ring-white" aria-controls="mobile-menu" aria-expanded="false">
          <span class="sr-only">Open main menu</span>
          <svg class="block h-6 w-6" fill="none" viewBox="0 0 24 24" stroke-width="1.5" stroke="currentColor" aria-hidden="true"><path stroke-linecap="round" stroke-linejoin="round" d="M3.75 6.75h16.5M3.75 12h16.5m-16.5 5.25h16.5"/></svg>
        </button>
      </div>
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
<div id="login-modal" tabindex="-1" aria-hidden="true" class="hidden fixed inset-0 z-50 flex h-[calc(100%-1rem)] max-h-full w-full items-center justify-center overflow-y-auto overflow-x-hidden bg-gray-900/50">
  <div class="relative max-h-full w-full max-w-md p-4">
    <div class="relative rounded-lg bg-white shadow">
      <div class="flex items-center justify-between rounded-t border-b p-4 md:p-5">
        <h3 class="text-xl font-semibold text-gray-900">Please sign in</h3>
        <button type="button" class="ms-auto inline-flex h-8 w-8 items-center justify-center rounded-lg bg-transparent text-sm text-gray-400 hover:bg-gray-200 hover:text-gray-900" data-modal-target="login-modal">
          <svg class="h-3 w-3" aria-hidden="true" xmlns="http://www.w3.org/2000/svg" fill="none" viewBox="0 0 14 14"><path stroke="currentColor" stroke-linecap="round" stroke-linejoin="round" stroke-width="2" d="m1 1 6 6m0 0 6 6M7 7l6-6M7 7l-6 6"/></svg>
          <span class="sr-only">Close modal</span>
        </button>
      </div>
      <div class="p-4 md:p-5">
        <form method="post" action="login" class="space-y-4">
          <div>
            <label for="username" class="mb-2 block text-sm font-medium text-gray-900">User Name</label>
            <input type="text" id="username" name="username" class="block w-full rounded-lg border border-gray-300 bg-gray-50 p-2.5 text-sm text-gray-900 focus:border-blue-500 focus:ring-blue-500" placeholder="your name" required>
          </div>
          <div>
            <label for="password" class="mb-2 block text-sm font-medium text-gray-900">Password</label>
            <input type="password" id="password" name="passwd" class="block w-full rounded-lg border border-gray-300 bg-gray-50 p-2.5 text-sm text-gray-900 focus:border-blue-500 focus:ring-blue-500" placeholder="&bull;&bull;&bull;&bull;&bull;&bull;&bull;&bull;">
          </div>
          <button type="submit" class="w-full rounded-lg bg-blue-700 px-5 py-2.5 text-center text-sm font-medium text-white hover:bg-blue-800 focus:outline-none focus:ring-4 focus:ring-blue-300">Sign in</button>
        </form>
      </div>
    </div>
  </div>
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
<footer class="mt-12 bg-white shadow">
  <div class="mx-auto w-full max-w-screen-xl p-4 md:flex md:items-center md:justify-between">
    <span class="text-sm text-gray-500 sm:text-center">BookInfo Sample, an application made of four services written in
      different languages: productpage (Python), details (Ruby), reviews (Java) and ratings (Node.js).</span>
    <ul class="mt-3 flex flex-wrap items-center text-sm font-medium text-gray-500 sm:mt-0">
      <li><a href="https://istio.io/latest/docs/examples/bookinfo/" class="me-4 hover:underline md:me-6">About</a></li>
      <li><a href="https://github.com/istio/istio/tree/master/samples/bookinfo" class="me-4 hover:underline md:me-6">Source</a></li>
      <li><a href="https://www.apache.org/licenses/LICENSE-2.0" class="hover:underline">License</a></li>
    </ul>
  </div>
</footer>
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
        '        <div class="px-4 py-3 sm:grid sm:grid-cols-3 sm:gap-4 sm:px-0">\n'
        f'          <dt class="text-sm font-medium leading-6 text-gray-900">{label}:</dt>\n'
        '          <dd class="mt-1 text-sm leading-6 text-gray-700 sm:col-span-2 sm:mt-0">'
        f"{escape(str(details.get(key, '')))}</dd>\n        </div>\n"
        for label, key in _DETAIL_FIELDS
    )
    return (
        '    <div class="details rounded-lg border border-gray-200 bg-white p-6 shadow-sm">\n'
        '      <h4 class="text-2xl font-bold tracking-tight text-gray-900">Book Details</h4>\n'
        f'      <p class="mt-1 text-sm leading-6 text-gray-500">{escape(str(details.get("author", "")))}, '
        f"{escape(str(details.get('year', '')))}</p>\n"
        '      <div class="mt-6 border-t border-gray-100">\n'
        f'      <dl class="divide-y divide-gray-100">\n{rows}      </dl>\n      </div>\n    </div>\n'
    )


_STAR_PATH = (
    "M20.924 7.625a1.523 1.523 0 0 0-1.238-1.044l-5.051-.734-2.259-4.577a1.534 1.534 0 0 0-2.752 0L7.365 "
    "5.847l-5.051.734A1.535 1.535 0 0 0 1.463 9.2l3.656 3.563-.863 5.031a1.532 1.532 0 0 0 2.226 1.616L11 "
    "17.033l4.518 2.375a1.534 1.534 0 0 0 2.226-1.617l-.863-5.03L20.537 9.2a1.523 1.523 0 0 0 .387-1.575Z"
)
_STAR = (
    '          <svg class="ms-1 h-5 w-5" style="color: {color}" aria-hidden="true" xmlns="http://www.w3.org/2000/svg"'
    ' fill="{fill}" stroke="currentColor" stroke-width="1" viewBox="0 0 22 20"><path d="' + _STAR_PATH + '"/></svg>\n'
)


def _stars(rating: dict) -> str:
    if "error" in rating:
        return f'        <p class="mt-2 text-sm font-medium text-red-600">{escape(str(rating["error"]))}</p>\n'
    stars = max(0, min(5, int(rating.get("stars", 0))))
    color = escape(str(rating.get("color", "black")))
    icons = _STAR.format(color=color, fill="currentColor") * stars + _STAR.format(color=color, fill="none") * (
        5 - stars
    )
    return f'        <div class="mt-2 flex items-center" title="{stars} of 5 stars">\n{icons}        </div>\n'


def _reviews_section(status: int, reviews: dict) -> str:
    if status != 200:
        return (
            '    <div class="reviews">\n      <h4 class="text-2xl font-bold">Error fetching product reviews!</h4>\n'
            f"      <p>{escape(str(reviews.get('error', '')))}</p>\n    </div>\n"
        )
    items = []
    for review in reviews.get("reviews", []):
        rating = review.get("rating")
        reviewer = escape(str(review.get("reviewer", "")))
        items.append(
            '      <figure class="mt-6 rounded-lg border border-gray-200 bg-gray-50 p-6">\n'
            '        <blockquote class="text-base leading-7 text-gray-800">\n'
            f'          <p class="italic">&ldquo;{escape(str(review.get("text", "")))}&rdquo;</p>\n'
            "        </blockquote>\n"
            '        <figcaption class="mt-4 flex items-center gap-x-3">\n'
            '          <div class="flex h-8 w-8 items-center justify-center rounded-full bg-gray-200 text-xs'
            f' font-semibold text-gray-600">{reviewer[:1]}{reviewer[-1:]}</div>\n'
            f'          <div class="text-sm font-semibold text-gray-900">{reviewer}</div>\n'
            "        </figcaption>\n" + (_stars(rating) if isinstance(rating, dict) else "") + "      </figure>\n"
        )
    podname = escape(str(reviews.get("podname", "")))
    clustername = escape(str(reviews.get("clustername", "")))
    return (
        '    <div class="reviews rounded-lg border border-gray-200 bg-white p-6 shadow-sm">\n'
        '      <h4 class="text-2xl font-bold tracking-tight text-gray-900">Book Reviews</h4>\n'
        + "".join(items)
        + f'      <dl class="mt-4 text-xs text-gray-400"><dt>Reviews served by:</dt><dd>{podname}</dd>'
        + (f"<dd>{clustername}</dd>" if clustername != "null" else "")
        + "</dl>\n    </div>\n"
    )


class SectionCache:
    """Rendered sections keyed by the downstream answer, bounded, least recently used out first."""

    def __init__(self, render: Callable[[int, Any], str], entries: int = CACHE_ENTRIES) -> None:
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
