"""The traffic-control functions the testbed can put in force, one at a time, and their parameters.

Each profile is the plain sidecar mesh plus one function (or, for `none`, no proxies at all). Values
are checked here so a bad `--set key=value` fails before any proxy is touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import TestbedFailure
from .topology import SERVICES

ALL_SERVICES = "all"


@dataclass(frozen=True)
class Param:
    default: str
    help: str
    kind: str = "str"  # "str", "int", "float", "choice", "service"
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None

    def check(self, profile: str, key: str, value: str) -> str:
        where = f"{profile} parameter {key}={value!r}"
        if self.kind in ("int", "float"):
            try:
                number = int(value) if self.kind == "int" else float(value)
            except ValueError:
                raise TestbedFailure(f"{where}: expected {'a whole' if self.kind == 'int' else 'a'} number") from None
            if self.minimum is not None and number < self.minimum:
                raise TestbedFailure(f"{where}: must be at least {self.minimum:g}")
            if self.maximum is not None and number > self.maximum:
                raise TestbedFailure(f"{where}: must be at most {self.maximum:g}")
            return value
        allowed = self.choices
        if self.kind == "service":
            allowed = (*SERVICES, ALL_SERVICES) if ALL_SERVICES in self.choices else SERVICES
        if allowed and value not in allowed:
            raise TestbedFailure(f"{where}: choose one of {', '.join(allowed)}")
        return value


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    params: dict[str, Param] = field(default_factory=dict)
    proxies: bool = True

    def resolve(self, overrides: dict[str, str] | None) -> dict[str, str]:
        """Defaults overridden by `overrides`, each value checked; unknown keys are refused."""
        values = {key: param.default for key, param in self.params.items()}
        for key, value in (overrides or {}).items():
            param = self.params.get(key)
            if param is None:
                known = ", ".join(sorted(self.params)) or "none"
                raise TestbedFailure(f"profile {self.name} has no parameter {key!r} (parameters: {known})")
            values[key] = param.check(self.name, key, str(value).strip())
        return values


def _service(default: str, what: str, *, allow_all: bool = False) -> Param:
    return Param(default, what, kind="service", choices=(ALL_SERVICES,) if allow_all else ())


def _percent(default: str) -> Param:
    return Param(default, "share of requests affected, in percent", kind="float", minimum=0, maximum=100)


PROFILES: dict[str, Profile] = {
    profile.name: profile
    for profile in (
        Profile("none", "no proxies at all: apps call each other directly (the baseline)", proxies=False),
        Profile("sidecar", "plain HAProxy sidecars and ingress, plaintext, round robin"),
        Profile(
            "mtls",
            "sidecar-to-sidecar TLS with client certificates from the testbed CA (STRICT)",
            {
                "min_tls_version": Param(
                    "TLSv1.2", "lowest TLS version accepted", kind="choice", choices=("TLSv1.2", "TLSv1.3")
                )
            },
        ),
        Profile(
            "retries",
            "the caller's sidecar retries failed requests",
            {
                "service": _service(ALL_SERVICES, "whose callers retry", allow_all=True),
                "attempts": Param("3", "retries after the first try", kind="int", minimum=1, maximum=10),
                "retry_on": Param(
                    "conn-failure,empty-response,response-timeout,502,503,504", "HAProxy retry-on conditions"
                ),
                "per_try_timeout_ms": Param("0", "per-try timeout (0: none)", kind="int", minimum=0),
            },
        ),
        Profile(
            "timeout",
            "the caller's sidecar gives up on a slow answer with 504",
            {
                "service": _service("reviews", "the service whose calls time out"),
                "timeout_ms": Param("500", "request timeout", kind="int", minimum=1),
            },
        ),
        Profile(
            "circuit-breaker",
            "connection limits with fast 503 on overflow, and ejection of a failing instance",
            {
                "service": _service("reviews", "the service guarded"),
                "max_connections": Param("32", "concurrent requests per instance", kind="int", minimum=1),
                "max_pending": Param("16", "requests waiting for a free connection", kind="int", minimum=0),
                "consecutive_errors": Param("5", "consecutive 5xx/connect errors that eject", kind="int", minimum=1),
                "ejection_s": Param("30", "how long an ejected instance stays out", kind="float", minimum=0.5),
            },
        ),
        Profile(
            "rate-limit",
            "the service's inbound sidecar answers 429 above a request rate",
            {
                "service": _service("productpage", "the service limited"),
                "limit_rps": Param("1000", "requests admitted per second (sliding window)", kind="int", minimum=1),
            },
        ),
        Profile(
            "fault-delay",
            "the caller's sidecar delays requests (VirtualService fault.delay)",
            {
                "service": _service("ratings", "the service whose calls are delayed"),
                "delay_ms": Param("7000", "added delay", kind="int", minimum=0),
                "percent": _percent("100"),
                "end_user": Param("jason", "only for this signed-in user ('' = everyone)"),
            },
        ),
        Profile(
            "fault-abort",
            "the caller's sidecar answers with an error status instead (VirtualService fault.abort)",
            {
                "service": _service("ratings", "the service whose calls are aborted"),
                "status": Param("500", "status returned", kind="int", minimum=200, maximum=599),
                "percent": _percent("100"),
                "end_user": Param("jason", "only for this signed-in user ('' = everyone)"),
            },
        ),
        Profile(
            "lb-round-robin",
            "callers take turns over a service's instances",
            {"service": _service(ALL_SERVICES, "balanced service", allow_all=True)},
        ),
        Profile(
            "lb-least-request",
            "callers pick the instance with the fewest requests in flight",
            {"service": _service(ALL_SERVICES, "balanced service", allow_all=True)},
        ),
        Profile(
            "lb-random",
            "callers pick an instance at random",
            {"service": _service(ALL_SERVICES, "balanced service", allow_all=True)},
        ),
        Profile(
            "access-log",
            "every sidecar and the ingress write one log line per request",
            {
                "format": Param(
                    "http",
                    "http: HAProxy httplog; json: one JSON object per line",
                    kind="choice",
                    choices=("http", "json"),
                )
            },
        ),
    )
}


def profile_named(name: str) -> Profile:
    profile = PROFILES.get(name)
    if profile is None:
        raise TestbedFailure(f"unknown testbed function {name!r}; choose one of {', '.join(PROFILES)}")
    return profile


def parse_settings(pairs: list[str]) -> dict[str, str]:
    """`["key=value", ...]` from the command line into a dict; a pair without `=` is refused."""
    settings: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise TestbedFailure(f"--set {pair!r}: expected key=value, e.g. --set timeout_ms=250")
        settings[key.strip()] = value.strip()
    return settings
