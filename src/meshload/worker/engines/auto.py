"""Pick the request engine for a plan (after uvicorn's `protocols/http/auto.py`).

Every plan today is HTTP/1.1 (http:// and https:// targets), which the uvloop engine serves.
"""

from __future__ import annotations

from .uvloop_http import run_share

__all__ = ["run_share"]
