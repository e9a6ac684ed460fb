"""The status channel: a loopback UDP socket collecting one run's publisher datagrams."""

from __future__ import annotations

import asyncio
import json
import logging
import select
import socket
from collections.abc import Callable
from typing import Any

from .publisher import UDP_MAX_BYTES

__all__ = ["StatusChannel"]

_MAX_WARNINGS = 100  # kept in the result; the rest are only counted
_LOGGED_WARNINGS = 20


class StatusChannel(asyncio.DatagramProtocol):
    """Receive ``{host, id, script, time, seq_no, type, payload}`` datagrams for ``run_id``.

    ``session_data`` dicts are merged into :attr:`session_data`; ``session_log`` and ``log``
    texts go to :attr:`messages` and ``note(text, level)``; ``backend_error`` becomes a
    warning. Datagrams that are not such JSON objects, too large, or of another id are counted
    and dropped.
    ``on_status(message)`` sees every accepted message.
    """

    def __init__(
        self,
        run_id: str,
        *,
        note: Callable[[str, int], Any] | None = None,
        on_status: Callable[[dict], Any] | None = None,
        max_bytes: int = UDP_MAX_BYTES,
    ) -> None:
        self.run_id = run_id
        self.note = note
        self.on_status = on_status
        self.max_bytes = max_bytes
        self.transport: asyncio.DatagramTransport | None = None
        self.address: tuple[str, int] = ("127.0.0.1", 0)
        self.session_data: dict = {}
        self.messages: list[tuple[float, str]] = []
        self.warnings: list[str] = []
        self.datagrams = self.malformed = self.oversized = self.foreign = self.seq_gaps = 0
        self.open_publishers = 0
        self.started = False
        self._last_seq: dict[tuple, int] = {}
        self._quiet: asyncio.Event | None = None

    async def open(self) -> tuple[str, int]:
        """Bind 127.0.0.1 on a free port; return the address."""
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            sock.bind(("127.0.0.1", 0))
        except OSError:
            sock.close()
            raise
        self._quiet = asyncio.Event()
        self.transport, _ = await loop.create_datagram_endpoint(lambda: self, sock=sock)
        self.address = sock.getsockname()
        return self.address

    def env(self, prefix: str = "SMURFPUB_") -> dict[str, str]:
        """The environment a publisher needs to reach this channel."""
        host, port = self.address
        return {
            prefix + "BACKEND": "udp",
            prefix + "UDP_HOST": host,
            prefix + "UDP_PORT": str(port),
            prefix + "ID": self.run_id,
        }

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    # ---- receiving ---------------------------------------------------------------------
    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.datagrams += 1
        if len(data) > self.max_bytes:
            self.oversized += 1
            self._warn(f"dropped an oversized status datagram ({len(data)} bytes)")
            return
        try:
            msg = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as err:
            self.malformed += 1
            self._warn(f"dropped a malformed status datagram ({err}): {data[:80]!r}")
            return
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            self.malformed += 1
            self._warn(f"dropped a status datagram that is not a typed message: {data[:80]!r}")
            return
        if msg.get("id") != self.run_id:
            self.foreign += 1
            return
        self._check_seq(msg)
        kind, payload = msg["type"], msg.get("payload")
        stamp = msg.get("time") if isinstance(msg.get("time"), int | float) else 0.0
        if kind == "session_data":
            if isinstance(payload, dict):
                self.session_data.update(payload)
            else:
                self.malformed += 1
                self._warn(f"session_data payload is not an object: {payload!r:.80}")
        elif kind in ("session_log", "log"):
            text = payload.get("message") if isinstance(payload, dict) else payload
            self.messages.append((stamp, str(text)))
            if self.note is not None:
                self.note(f"{kind}: {text}", logging.INFO)
        elif kind == "backend_error":
            text = payload.get("message") if isinstance(payload, dict) else payload
            self._warn(f"publisher: {text}")
        elif kind == "start":
            self.started = True
            self.open_publishers += 1
            self._quiet.clear()
        elif kind == "stop":
            self.open_publishers = max(0, self.open_publishers - 1)
            if self.open_publishers == 0:
                self._quiet.set()
        if self.on_status is not None:
            try:
                self.on_status(msg)
            except Exception as err:  # a monitor must not break the channel
                self._warn(f"status callback failed: {err!r}")

    def _check_seq(self, msg: dict) -> None:
        seq = msg.get("seq_no")
        if not isinstance(seq, int):
            return
        key = (msg.get("host"), msg.get("script"))
        last = self._last_seq.get(key)
        if last is not None and seq > last + 1:
            self.seq_gaps += seq - last - 1
            self._warn(f"{seq - last - 1} status message(s) lost before seq_no {seq}")
        self._last_seq[key] = seq  # a lower seq_no is a new publisher of the same script

    def _warn(self, text: str) -> None:
        if len(self.warnings) < _MAX_WARNINGS:
            self.warnings.append(text)
        if self.note is not None and len(self.warnings) <= _LOGGED_WARNINGS:
            self.note(f"status channel: {text}", logging.WARNING)

    # ---- draining ----------------------------------------------------------------------
    def pending(self) -> bool:
        """Whether datagrams wait in the socket, unread."""
        if self.transport is None:
            return False
        sock = self.transport.get_extra_info("socket")
        try:
            poller = select.poll()  # select.select refuses fds past 1023
            poller.register(sock.fileno(), select.POLLIN)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return False

    async def drain(self, seconds: float) -> None:
        """Take what was already sent; wait up to ``seconds`` for open publishers to stop."""
        if self.open_publishers > 0 and seconds > 0 and self._quiet is not None:
            try:
                await asyncio.wait_for(self._quiet.wait(), seconds)
            except TimeoutError:
                pass
        for _ in range(10_000):
            if not self.pending():
                break
            await asyncio.sleep(0)
