"""Publish a script's status the way pysmurf's publisher does, for a runner to collect.

Standard library only. A script started by :class:`~runengine.scripts.ScriptRunner` finds its
channel in the environment (``SMURFPUB_BACKEND=udp``, ``SMURFPUB_UDP_HOST``,
``SMURFPUB_UDP_PORT``, ``SMURFPUB_ID``); outside a runner the backend is ``null`` and messages
are discarded. Each message is one UDP datagram of JSON::

    {"host", "id", "script", "time", "seq_no", "type", "payload"}

Example, in a script::

    from runengine.scripts import publish
    publish({"band": 3, "ok": True}, "session_data")   # merged into the step's result
    publish("tuned band 3", "session_log")              # a message of the step's result
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import sys
import time
from collections.abc import Mapping
from typing import Any

__all__ = ["DEFAULT_UDP_PORT", "UDP_MAX_BYTES", "Publisher", "publish"]

DEFAULT_UDP_PORT = 8200
UDP_MAX_BYTES = 64000


class Publisher:
    """Send typed JSON messages to the runner's status channel (or nowhere).

    Sends a ``start`` message when made and a ``stop`` message on :meth:`close` (also at exit),
    which tells the runner that nothing more will come.
    """

    def __init__(
        self,
        script_id: str | None = None,
        *,
        prefix: str = "SMURFPUB_",
        env: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if env is None else env
        self.backend = env.get(prefix + "BACKEND", "null")
        self.id = env.get(prefix + "ID", "undeclared")
        self.address = (
            env.get(prefix + "UDP_HOST", "localhost"),
            int(env.get(prefix + "UDP_PORT", DEFAULT_UDP_PORT)),
        )
        self.script_id = script_id or os.path.basename(sys.argv[0] or "interactive")
        self.host = socket.gethostname()
        self.seq_no = 0
        self._sock: socket.socket | None = None
        if self.backend == "udp":
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._closed = False
        atexit.register(self.close)
        self.publish({"pid": os.getpid()}, "start")

    def publish(self, payload: Any, msgtype: str = "general") -> bool:
        """Send ``payload`` (JSON-able) as a ``msgtype`` message; False if it was not sent.

        A message over 64000 bytes is replaced by a ``backend_error`` message, as pysmurf does.
        """
        if self._sock is None:
            return False
        data = self._encode(payload, msgtype)
        sent = len(data) <= UDP_MAX_BYTES
        if not sent:  # its seq_no goes to the error instead: no gap for the runner to report
            note = f"Backend error: dropped large UDP packet ({len(data)} bytes)."
            data = self._encode({"message": note}, "backend_error")
        self._sock.sendto(data, self.address)
        self.seq_no += 1
        return sent

    def _encode(self, payload: Any, msgtype: str) -> bytes:
        msg = {
            "host": self.host,
            "id": self.id,
            "script": self.script_id,
            "time": time.time(),
            "seq_no": self.seq_no + 1,
            "type": msgtype,
            "payload": payload,
        }
        return json.dumps(msg).encode()

    def log(self, message: str) -> bool:
        """A ``log`` message: ``{"message": message}``."""
        return self.publish({"message": str(message)}, "log")

    def session_data(self, data: Mapping[str, Any]) -> bool:
        """Merge ``data`` into the running step's ``session_data``."""
        return self.publish(dict(data), "session_data")

    def session_log(self, message: str) -> bool:
        """Add ``message`` to the running step's messages."""
        return self.publish(str(message), "session_log")

    def close(self) -> None:
        """Send ``stop`` (once) and close the socket."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        if self._sock is not None:
            try:
                self.publish({"pid": os.getpid()}, "stop")
            finally:
                self._sock.close()
                self._sock = None

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_default: Publisher | None = None


def publish(payload: Any, msgtype: str = "general") -> bool:
    """Publish with a process-wide :class:`Publisher` made on first use."""
    global _default
    if _default is None:
        _default = Publisher()
    return _default.publish(payload, msgtype)
