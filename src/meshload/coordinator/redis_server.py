"""A private `redis-server` for one run: on a Unix socket in the coordinator's private folder, no TCP
port, no persistence, stopped when the run ends, and killed by the kernel when the coordinator dies.

The kernel part is Linux's parent-death signal (`prctl(PR_SET_PDEATHSIG, SIGKILL)`, set in the child
between fork and exec): it works however the coordinator ends, SIGKILL included, and needs nothing
from redis-server itself, which could not watch a pipe. Two limits, both covered by the pid file that
`run_folders.reap_leftovers` reads at the start of the next run: the signal follows the *thread* that
started the server (so it is started from the thread that owns the run), and other systems have no
such signal.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import RedisError
from .run_folders import create_run_folder, record_redis

INSTALL_HINT = "install it (apt-get install redis-server) or pass --redis URL of a running Redis"
#: How long redis-server may take to accept connections.
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
#: linux/prctl.h
_PR_SET_PDEATHSIG = 1


def die_with_this_process() -> Callable[[], None] | None:
    """A `preexec_fn` that has the child killed when this process dies (None where Linux is not)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # loaded here: the child only calls into it
    parent_pid = os.getpid()

    def arm() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before the signal was armed
            os._exit(1)

    return arm


class PrivateRedis:
    """`with PrivateRedis() as url:` a running redis-server reachable at `url` (unix://...).

    `run_folder` is the coordinator's private folder (`run_folders.create_run_folder`); without one,
    a folder of its own is made and removed on `stop`."""

    def __init__(self, run_folder: Path | None = None) -> None:
        self._own_folder = run_folder is None
        self.run_folder = create_run_folder() if run_folder is None else run_folder
        self.folder = self.run_folder / "redis"
        self.socket_path = self.folder / "redis.sock"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self) -> str:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisError(f"redis-server is not installed; {INSTALL_HINT}")
        self.folder.mkdir(parents=True, exist_ok=True)
        command = [
            binary,
            "--port",
            "0",
            "--unixsocket",
            str(self.socket_path),
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.folder),
            "--logfile",
            str(self.folder / "redis.log"),
            "--daemonize",
            "no",
        ]
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=die_with_this_process(),  # noqa: PLW1509 - armed before exec, see the module docstring
            # Out of the terminal's process group: a Ctrl-C is for the coordinator, which still needs
            # this Redis to collect what the workers measured before it stops.
            start_new_session=True,
        )
        record_redis(self.run_folder, self._process.pid)
        self._wait_until_ready()
        return self.url

    def _wait_until_ready(self) -> None:
        import redis

        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                stderr = (self._process.stderr.read() if self._process.stderr else b"").decode(errors="replace")
                log = self.folder / "redis.log"
                detail = (log.read_text(errors="replace") if log.exists() else stderr).strip().splitlines()
                raise RedisError(f"the private redis-server exited at start: {detail[-1] if detail else 'no message'}")
            if self.socket_path.exists():
                try:
                    with redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=1.0) as client:
                        client.ping()
                    return
                except redis.exceptions.ConnectionError:
                    pass
            time.sleep(0.02)
        self.stop()
        raise RedisError(f"the private redis-server did not start within {START_TIMEOUT_S:g}s; {INSTALL_HINT}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process is not None and process.stderr is not None:
            process.stderr.close()
        if self._own_folder:
            shutil.rmtree(self.run_folder, ignore_errors=True)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
