"""Plain blocking HTTP for the testbed tests (http.client: no redirects followed, no pooling)."""

from __future__ import annotations

import http.client
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    elapsed_s: float

    def json(self):
        import json

        return json.loads(self.body)


def fetch(
    url: str,
    method: str = "GET",
    *,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    timeout_s: float = 10.0,
) -> Answer:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout_s)
    started = time.monotonic()
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request(method, target or "/", body=body, headers=headers or {})
        response = connection.getresponse()
        payload = response.read()
        return Answer(
            response.status,
            {k.lower(): v for k, v in response.getheaders()},
            payload,
            time.monotonic() - started,
        )
    finally:
        connection.close()


def fetch_many(url: str, count: int, *, concurrency: int = 8, headers: dict[str, str] | None = None) -> list[Answer]:
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(lambda _: fetch(url, headers=headers), range(count)))


def login(base_url: str, user: str) -> str:
    """The `session` cookie productpage sets for `user`."""
    answer = fetch(
        f"{base_url}/login",
        "POST",
        body=f"username={user}".encode(),
        headers={"content-type": "application/x-www-form-urlencoded", "referer": "/productpage"},
    )
    assert answer.status == 302, answer
    return answer.headers["set-cookie"].split(";")[0]
