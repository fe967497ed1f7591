"""What a worker agrees to run: the targets it may send to, and ceilings on rate, duration and
connections. A fleet worker runs whatever plan a coordinator with access to its Redis hands it; its
operator bounds that here, and the worker refuses a share outside the bounds before sending anything.

A target is allowed when its host is named in the allowlist, or when it is an address (or a name all
of whose addresses are) inside an allowed network. Without an allowlist only loopback is allowed: a
worker nobody configured sends to its own machine and nowhere else. The ceilings are this worker's
own: its share of the plan's rate, the run's whole length (warm-up included) and the connections it
would open.
"""

from __future__ import annotations

import ipaddress
import math
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..scenarios.plan import ClosedLoop, OpenLoop
from ..scenarios.schedule import WorkerShare

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

LOOPBACK: tuple[Network, ...] = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


@dataclass(frozen=True)
class WorkerLimits:
    """The bounds one worker runs within (None: no ceiling)."""

    networks: tuple[Network, ...] = LOOPBACK
    hosts: frozenset[str] = frozenset()  # host names allowed as written (lower case)
    max_rate: float | None = None  # requests per second this worker sends
    max_duration_s: float | None = None  # warm-up plus measured duration
    max_connections: int | None = None  # connections this worker opens at once

    @classmethod
    def from_allowlist(
        cls,
        entries: list[str],
        *,
        max_rate: float | None = None,
        max_duration_s: float | None = None,
        max_connections: int | None = None,
    ) -> WorkerLimits:
        """Limits from `--allow-target` entries (host names, addresses, CIDRs; none: loopback only).
        A malformed entry raises ValueError with the entry in its message."""
        if not entries:
            return cls(max_rate=max_rate, max_duration_s=max_duration_s, max_connections=max_connections)
        networks: list[Network] = []
        hosts: set[str] = set()
        for entry in entries:
            text = entry.strip().strip("[]")
            if not text:
                raise ValueError(f"{entry!r} is empty; give a host name, an address or a CIDR")
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                if "/" in text or any(char.isspace() for char in text):
                    raise ValueError(f"{entry!r} is neither a host name nor an address or CIDR") from None
                hosts.add(text.lower().rstrip("."))
        return cls(tuple(networks), frozenset(hosts), max_rate, max_duration_s, max_connections)

    def describe(self) -> str:
        """The allowlist as the operator would write it."""
        return ", ".join([*(str(network) for network in self.networks), *sorted(self.hosts)])


def refusal(share: WorkerShare, limits: WorkerLimits) -> str | None:
    """Why this worker must not run `share`, as one sentence with what to change; None when it may."""
    for target in share.plan.targets:
        host = urlsplit(target.url).hostname or ""
        if not _host_allowed(host, limits):
            return (
                f"target {host} is not in its allowlist ({limits.describe()}); "
                f"start it with --allow-target {host} to allow it"
            )
    rate = share_rate(share)
    if limits.max_rate is not None and rate > limits.max_rate:
        what = "an unpaced closed loop" if math.isinf(rate) else f"{rate:g} req/s"
        return f"its share is {what}, above its --max-rate {limits.max_rate:g} req/s; use more workers or less load"
    total_s = share.plan.total_s
    if limits.max_duration_s is not None and total_s > limits.max_duration_s:
        return f"the run lasts {total_s:g}s with its warm-up, above its --max-duration {limits.max_duration_s:g}s"
    connections = share_connections(share)
    if limits.max_connections is not None and connections > limits.max_connections:
        return (
            f"its share would open up to {connections} connections, above its --max-connections "
            f"{limits.max_connections}; use more workers or fewer connections"
        )
    return None


def share_rate(share: WorkerShare) -> float:
    """The highest rate this worker's share sends (infinite for a closed loop without think time)."""
    load = share.plan.load
    if isinstance(load, OpenLoop):
        return max([load.rate, *(stage.rate for stage in load.stages)]) / share.count
    assert isinstance(load, ClosedLoop)
    return share.concurrency / load.think_time_s if load.think_time_s > 0 else math.inf


def share_connections(share: WorkerShare) -> int:
    """The most connections this worker's share opens at once."""
    origins = {(urlsplit(target.url).scheme, urlsplit(target.url).netloc) for target in share.plan.targets}
    if share.plan.multiplexed:
        return share.plan.max_connections * len(origins)  # HTTP/2, gRPC: N per origin, requests multiplexed
    if share.is_open_loop:
        return share.plan.max_connections  # HTTP/1.1 at most; a locustfile's users, one each
    return share.concurrency * len(origins)  # each client (or Locust user) keeps one connection per origin


def _host_allowed(host: str, limits: WorkerLimits) -> bool:
    name = host.lower().rstrip(".")
    if name in limits.hosts:
        return True
    try:
        addresses = [ipaddress.ip_address(name)]
    except ValueError:
        try:
            infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
        except OSError:
            return False  # a name nobody can resolve is allowed only by name
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    return bool(addresses) and all(any(address in network for network in limits.networks) for address in addresses)
