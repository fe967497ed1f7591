"""A private `redis-server` for one run: on a Unix socket in the run's temp folder, no TCP port, no
persistence, stopped when the run ends."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from ..errors import RedisError

INSTALL_HINT = "install it (apt-get install redis-server) or pass --redis URL of a running Redis"
#: How long redis-server may take to accept connections.
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


class PrivateRedis:
    """`with PrivateRedis() as url:` a running redis-server reachable at `url` (unix://...)."""

    def __init__(self, folder: Path | None = None) -> None:
        self._own_folder = folder is None
        self.folder = Path(tempfile.mkdtemp(prefix="meshload-redis-")) if folder is None else folder
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
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
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
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
