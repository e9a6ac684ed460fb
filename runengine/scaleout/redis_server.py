"""A redis-server of our own on loopback: started, awaited and stopped by PID.

    server = RedisServer("/data/queue/redis").start()     # a free port, AOF with fsync always
    server.url                                            # redis://127.0.0.1:<port>/0
    server.stop()

``runengine queue`` starts one when no ``--redis`` is given; the tests start theirs with it.
Persistence defaults to what :class:`~runengine.scaleout.lock.RedisLock` requires
(``appendonly yes``, ``appendfsync always``), so a restarted server remembers lock holders,
fences and the queue. Only the standard library is used: no ``redis`` package needed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from .connection import ScaleoutError

__all__ = ["REDIS_SERVER", "RedisServer", "RedisServerError", "free_port"]

LOOPBACK = "127.0.0.1"

#: The redis-server executable, or None if not installed (``make system-deps`` installs it).
REDIS_SERVER = shutil.which("redis-server") or next(
    (p for p in ("/usr/bin/redis-server", "/usr/local/bin/redis-server") if os.path.exists(p)),
    None,
)


class RedisServerError(ScaleoutError, RuntimeError):
    """redis-server is missing, exited, or did not answer PING in time (the log is quoted)."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def ping(port: int, timeout: float = 0.2) -> bool:
    """True if a Redis server answers PING on ``127.0.0.1:port``."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server subprocess bound to 127.0.0.1, with its files in ``directory``.

    ``port``: default a free one, kept across :meth:`stop` and :meth:`start` (a restart is
    the same server to its clients). ``persistent=False`` turns the append-only file off,
    which :class:`~runengine.scaleout.lock.RedisLock` then refuses.
    """

    def __init__(
        self, directory: str | os.PathLike, port: int | None = None, *, persistent: bool = True
    ) -> None:
        self.directory = Path(directory)
        self.port = port or free_port()
        self.persistent = persistent
        self.url = f"redis://{LOOPBACK}:{self.port}/0"
        self.address = f"{LOOPBACK}:{self.port}"
        self.proc: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        return self.directory / "redis.log"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def command(self) -> list[str]:
        if REDIS_SERVER is None:
            raise RedisServerError("redis-server is not installed (make system-deps installs it)")
        return [
            REDIS_SERVER,
            "--port", str(self.port),
            "--bind", LOOPBACK,
            "--protected-mode", "yes",
            "--save", "",
            "--appendonly", "yes" if self.persistent else "no",
            "--appendfsync", "always",
            "--dir", str(self.directory),
        ]  # fmt: skip

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the server and wait (at most ``timeout`` s) until it answers PING."""
        if self.alive:
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(), cwd=self.directory, stdout=log, stderr=log, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if ping(self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise RedisServerError(
            f"redis-server did not answer on {self.address} within {timeout} s: {self.log_tail()}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout`` s) and reap it."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
        proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the server, as a crash would (for fault tests)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)

    def log_tail(self, lines: int = 10) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<RedisServer {self.address} {'running' if self.alive else 'stopped'}>"
