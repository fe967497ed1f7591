"""Errors meshload reports to its user as one line: what was wrong, where, and what to do.

    MeshloadError            any error meant for the user; `str()` is the whole message
    ├── UsageError           a bad command-line value (exit code 2)
    ├── PlanError            a bad plan or scenario file; carries the file and line
    ├── RedisError           Redis unreachable, refused the password, or is not usable
    ├── TestbedError         the local testbed could not be started, changed or stopped
    ├── RunError             a run could not be carried out (no workers, all workers lost, ...)
    ├── InternalError        a background thread of meshload failed unexpectedly (a bug); its
    │                        traceback was printed where it happened, this ends the process
    └── MeshError            a mesh in a Kubernetes cluster could not be driven
        ├── ClusterUnreachable     no Kubernetes configuration, or no API server answered
        ├── ApiRefused             the API server refused a request (RBAC 403, a missing CRD, ...)
        ├── NotInForce             applied, but not in force before the deadline
        └── FunctionNotSupported   the mesh cannot express this function (or these parameters)

Library errors are translated at the boundary with `raise ... from exc`, so the traceback is kept
for `--debug` while the user sees one line.
"""

from __future__ import annotations


class MeshloadError(Exception):
    """An error for the user: the message says what, where, and what to do."""

    exit_code = 1


class UsageError(MeshloadError):
    exit_code = 2


class PlanError(MeshloadError):
    exit_code = 2

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}")
        self.path = path
        self.line = line


class RedisError(MeshloadError):
    pass


class TestbedError(MeshloadError):
    __test__ = False  # not a pytest test class despite the name


class RunError(MeshloadError):
    pass


class InternalError(MeshloadError):
    """A bug in a background thread, reported once more (as one line) by the thread that must stop."""


class MeshError(MeshloadError):
    pass


class ClusterUnreachable(MeshError):
    pass


class ApiRefused(MeshError):
    pass


class NotInForce(MeshError):
    pass


class FunctionNotSupported(MeshError):
    """Carries the mesh's `Support` answer, so a study can mark the cell instead of failing."""

    def __init__(self, support: object) -> None:
        super().__init__(str(support))
        self.support = support
