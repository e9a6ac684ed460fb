"""bluesky-httpserver in front of an RE Manager: HTTP on 127.0.0.1, one API key.

    front = HTTPFront(workdir, manager, api_key=key).start()     # http://127.0.0.1:<port>
    from bluesky_queueserver_api.http import REManagerAPI
    api = REManagerAPI(http_server_uri=front.uri, http_auth_provider=None)
    api.set_authorization_key(api_key=key)
    front.stop()

Single-user mode: the key (``QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY``) grants every scope;
a request without it, or with another, gets 401. :func:`api_key` keeps the key in a 0600 file.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from runengine.scaleout.redis_server import free_port
from runengine.scripts.process import group_members

from ..api_keys import api_key as private_key
from .manager import QueueError, QueueManager, _script

__all__ = ["HTTPFront", "api_key"]

log = logging.getLogger(__name__)

API_KEY_ENV = "QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY"


def api_key(path: Path) -> tuple[str, str]:
    """The HTTP API key and where it is: ``$QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY``, the
    file at ``path``, or a new key written there (mode 0600)."""
    return private_key(path, API_KEY_ENV)


class HTTPFront:
    """One ``start-bluesky-httpserver`` process for ``manager``, in a session of its own."""

    def __init__(
        self, directory: str | os.PathLike, manager: QueueManager, *, api_key: str, port: int = 0
    ) -> None:
        self.directory = Path(directory)
        self.manager = manager
        self.api_key = api_key
        self.port = port or free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.log_path = self.directory / "httpserver.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> HTTPFront:
        """Start the server and wait until it answers an authorized ``status``."""
        self.directory.mkdir(parents=True, exist_ok=True)
        env = dict(
            os.environ,
            QSERVER_ZMQ_CONTROL_ADDRESS=self.manager.control_addr,
            QSERVER_ZMQ_INFO_ADDRESS=self.manager.info_addr,
        )
        env[API_KEY_ENV] = self.api_key
        env.pop("QSERVER_HTTP_SERVER_CONFIG", None)
        with open(self.log_path, "ab") as out:
            os.chmod(self.log_path, 0o600)  # the server logs its settings, the key among them
            self.proc = subprocess.Popen(
                [
                    _script("start-bluesky-httpserver"),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                cwd=self.directory,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.stop()
                raise QueueError(f"start-bluesky-httpserver exited with {code}: {self.log()}")
            if self.status(self.api_key) is not None:
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise QueueError(f"the HTTP server did not answer in {timeout} s: {self.log()}")
            time.sleep(0.2)

    def status(self, key: str | None) -> Any:
        """``GET /api/status`` with ``key``: the JSON, or None if refused or not answering."""
        request = urllib.request.Request(f"{self.uri}/api/status")
        if key is not None:
            request.add_header("Authorization", f"ApiKey {key}")
        try:
            with urllib.request.urlopen(request, timeout=2) as answer:
                return json.loads(answer.read())
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def stop(self, timeout: float = 10.0) -> list[int]:
        """SIGTERM the server's group, SIGKILL after ``timeout``; return the PIDs killed."""
        proc, self.proc = self.proc, None
        if proc is None:
            return []
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        left = group_members(proc.pid)
        if left:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
        return left

    def log(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.replace(self.api_key, "<api key>").splitlines()[-lines:])
