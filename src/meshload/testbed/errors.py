"""The testbed's own error: it runs without the rest of meshload, so it cannot use meshload.errors.

`coordinator/mesh/local.py` translates it into `meshload.errors.TestbedError` at the boundary.
"""

from __future__ import annotations


class TestbedFailure(Exception):
    """The testbed could not be started, changed or stopped; the message says what to do."""

    __test__ = False  # not a pytest test class despite the name
