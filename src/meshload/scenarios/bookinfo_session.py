"""BookInfo's logged-in session cookie, made the way productpage's `POST /login` makes it.

productpage keeps the user in Flask's signed cookie session under a secret key hard-coded in its
source (`samples/bookinfo/src/productpage/productpage.py`), so every replica accepts a cookie signed
with that key. Sending it makes productpage forward `end-user: <user>`, which is what the
end-user routing, fault and delay rules (`headers.end-user.exact: jason`) match. Flask checks the
cookie's timestamp against a 31-day lifetime, so the cookie is signed when the plan is loaded, never
stored in a file.

The format is itsdangerous' `URLSafeTimedSerializer` as Flask configures it: compact JSON, zlib when
that is shorter, URL-safe base64 without padding, a timestamp, and an HMAC-SHA1 signature under a key
derived from the secret with the salt "cookie-session".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import zlib

SESSION_COOKIE = "session"
BOOKINFO_SECRET_KEY = b'_5#y2L"F4Q8z\n\xec]/'
_SALT = b"cookie-session"


def signed_session(user: str, *, secret_key: bytes = BOOKINFO_SECRET_KEY, now_s: float | None = None) -> str:
    """The value of the `session` cookie for a productpage session logged in as `user`."""
    payload = json.dumps({"user": user}, separators=(",", ":")).encode()
    compressed = zlib.compress(payload)
    body = b"." + _b64(compressed) if len(compressed) < len(payload) - 1 else _b64(payload)
    timestamp = int(time.time() if now_s is None else now_s)
    signed = body + b"." + _b64(timestamp.to_bytes((timestamp.bit_length() + 7) // 8, "big"))
    derived_key = hmac.new(secret_key, _SALT, hashlib.sha1).digest()
    signature = hmac.new(derived_key, signed, hashlib.sha1).digest()
    return (signed + b"." + _b64(signature)).decode("ascii")


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")
