"""Network namespaces standing in for cluster nodes: each "node" is a namespace of its own with one veth
pair to a bridge in the root namespace, on a private /24 that nothing on this machine uses yet.

    with NodeNetwork(3) as nodes:
        nodes.gateway                   # the bridge's address: what the nodes reach in the root namespace
        nodes.address(1)                # node 1's own address
        nodes.command(1, ["meshload", "worker"])   # argv running inside node 1's namespace

Servers that the nodes must reach (Redis, the target) listen on `gateway`; traffic never leaves the
machine. Everything created is removed on exit, processes still running in the namespaces first, even
when the set-up failed half way. Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN): without it, set-up
raises `NetnsUnavailable` with what failed, so a test fails loudly instead of skipping.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Self

#: 10.200.0.0/24 ... 10.254.255.0/24 are tried, at random, until one is free on this machine.
_SUBNET_FIRST_OCTET = range(200, 255)
_STOP_TIMEOUT_S = 5.0


class NetnsUnavailable(RuntimeError):
    pass


def _output(*argv: str) -> str:
    """What a command printed, whatever its exit code (a listing or a clean-up step)."""
    return subprocess.run(argv, capture_output=True, text=True, check=False).stdout


def _ip(*args: str, namespace: str | None = None) -> str:
    command = ["ip", *(["-n", namespace] if namespace else []), *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise NetnsUnavailable(f"`{' '.join(command)}` failed: {done.stderr.strip() or done.returncode}")
    return done.stdout


class NodeNetwork:
    def __init__(self, count: int) -> None:
        self.count = count
        # Names unique to this test process (others may run the same test at the same time); interface
        # names have at most 15 characters.
        self.tag = f"{os.getpid() % 100000:05d}{random.randrange(16**2):02x}"
        self.bridge = f"mlbr{self.tag}"
        self.namespaces = [f"meshload-node-{self.tag}-{index}" for index in range(count)]
        self.network = self._free_subnet()
        hosts = list(self.network.hosts())
        self.gateway = str(hosts[0])
        self._addresses = [str(hosts[10 + index]) for index in range(count)]

    def address(self, index: int) -> str:
        return self._addresses[index]

    def command(self, index: int, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.namespaces[index], *argv]

    def __enter__(self) -> Self:
        try:
            self._create()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()

    def _create(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/{self.network.prefixlen}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for index, namespace in enumerate(self.namespaces):
            outside, inside = f"mlv{self.tag}{index}", f"mlp{self.tag}{index}"
            _ip("netns", "add", namespace)
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            _ip("link", "set", inside, "netns", namespace)
            _ip("link", "set", outside, "master", self.bridge)
            _ip("link", "set", outside, "up")
            _ip("addr", "add", f"{self.address(index)}/{self.network.prefixlen}", "dev", inside, namespace=namespace)
            _ip("link", "set", inside, "up", namespace=namespace)
            _ip("link", "set", "lo", "up", namespace=namespace)
            _ip("route", "add", "default", "via", self.gateway, namespace=namespace)

    def remove(self) -> None:
        """Stop what still runs in the namespaces, delete them (their veth ends go with them) and the bridge."""
        existing = set(_output("ip", "netns", "list").split())
        namespaces = [namespace for namespace in self.namespaces if namespace in existing]
        pids = [pid for namespace in namespaces for pid in self.pids(namespace)]
        _signal_all(pids, signal.SIGTERM)
        deadline = time.monotonic() + _STOP_TIMEOUT_S
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        _signal_all([pid for pid in pids if _alive(pid)], signal.SIGKILL)
        for namespace in namespaces:
            _output("ip", "netns", "del", namespace)
        for link in self.leftovers():  # a veth pair whose inside end never moved, the bridge
            _output("ip", "link", "del", link)

    @staticmethod
    def pids(namespace: str) -> list[int]:
        return [int(pid) for pid in _output("ip", "netns", "pids", namespace).split()]

    def leftovers(self) -> list[str]:
        """Namespaces and interfaces of this network that still exist (none after `remove`)."""
        namespaces = set(_output("ip", "netns", "list").split())
        found = [namespace for namespace in self.namespaces if namespace in namespaces]
        links = {word.rstrip(":").split("@")[0] for word in _output("ip", "-o", "link", "show").split()}
        return found + sorted(link for link in links if link.startswith(("mlv", "mlp", "mlbr")) and self.tag in link)

    @staticmethod
    def _free_subnet() -> ipaddress.IPv4Network:
        used = _output("ip", "-4", "-o", "addr", "show") + " " + _output("ip", "-4", "route", "show")
        taken = [ipaddress.ip_network(word, strict=False) for word in used.split() if _is_cidr(word)]
        candidates = [(first, second) for first in _SUBNET_FIRST_OCTET for second in range(256)]
        random.shuffle(candidates)
        for first, second in candidates:
            network = ipaddress.IPv4Network(f"10.{first}.{second}.0/24")
            if not any(network.overlaps(other) for other in taken if other.version == 4 and other.prefixlen > 8):
                return network
        raise NetnsUnavailable("no free 10.x.y.0/24 network on this machine for the test's nodes")


def _is_cidr(word: str) -> bool:
    if "/" not in word:
        return False
    try:
        ipaddress.ip_network(word, strict=False)
    except ValueError:
        return False
    return True


def _alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped by its parent, is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
