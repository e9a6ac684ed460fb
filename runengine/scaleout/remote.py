"""Remote control of a RunEngine: an authenticated JSON-lines server on loopback, and its client.

    server = RemoteServer(RE, token_file="~/.config/runengine/remote-tokens",
                          registry=reg, locks=[lock]).start()      # 127.0.0.1, a free port
    client = RemoteClient(server.url, token_file=...)
    client.state(); client.pause(name="operator"); client.resume(); client.agents()

Wire format: one JSON object per line each way. A request is ``{"id": 1, "token": "...",
"op": "pause", "args": {"defer": true}}``; the reply ``{"id": 1, "ok": true, "result": ...}``
or ``{"id": 1, "ok": false, "error": "..."}``. Every request carries its token; a missing or
wrong one is refused, logged (peer address, never the token) and the connection closed.

The token file is the operator's: one token per line (``name:token`` or a bare token; ``#``
comments), at least 16 characters each; a file readable by group or others is refused.
Tokens are compared in constant time. Operations: ``state``, ``pause``, ``resume``, ``stop``,
``abort``, ``halt``, ``panic``, ``all_is_well``, ``agents``, ``locks``, ``ping``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import socket
import stat
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .connection import ScaleoutError

__all__ = [
    "OPERATIONS",
    "RemoteClient",
    "RemoteError",
    "RemoteServer",
    "Unauthorized",
    "read_tokens",
]

logger = logging.getLogger(__name__)

OPERATIONS = (
    "state", "pause", "resume", "stop", "abort", "halt", "panic", "all_is_well", "agents",
    "locks", "ping",
)  # fmt: skip
MAX_LINE = 64 * 1024


class RemoteError(ScaleoutError, RuntimeError):
    """The server refused or failed a request; the message is the server's."""


class Unauthorized(RemoteError):
    """The server refused the token."""


def read_tokens(path: str | os.PathLike) -> dict[str, str]:
    """``{name: token}`` from an operator's token file (see the module); ValueError if unsafe."""
    path = Path(path).expanduser()
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ValueError(f"Token file {path} is accessible to group or others: chmod 600 it")
    tokens = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, token = line.rpartition(":")
        if len(token) < 16:
            raise ValueError(f"{path}:{number}: a token must have at least 16 characters")
        tokens[name or f"token{number}"] = token
    if not tokens:
        raise ValueError(f"Token file {path} holds no token")
    return tokens


def _authenticate(tokens: dict[str, str], given: Any) -> str | None:
    """The name of the token matching ``given`` (every token compared, in constant time)."""
    if not isinstance(given, str):
        given = ""
    found = None
    for name, token in tokens.items():
        if hmac.compare_digest(token.encode(), given.encode()):
            found = name
    return found


class RemoteServer:
    """Serve remote control of ``RE`` from a thread of its own (see the module).

    ``registry``: listed by ``agents``; ``locks``: listed by ``locks``. ``port=0`` picks a free
    port (``url`` tells it). ``wait``: how long a blocking call (resume, stop while paused...)
    may run before the reply says it goes on in the background.
    """

    def __init__(
        self,
        RE: Any,
        token_file: str | os.PathLike,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        registry: Any = None,
        locks: Iterable[Any] = (),
        wait: float = 1.0,
    ) -> None:
        self.RE = RE
        self.token_file = Path(token_file).expanduser()
        self.tokens = read_tokens(self.token_file)
        self.host = host
        self.port = port
        self.registry = registry
        self.locks = list(locks)
        self.wait = wait
        self.refused = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    def reload_tokens(self) -> None:
        """Read the token file again (after the operator changed it)."""
        self.tokens = read_tokens(self.token_file)

    # ---- lifecycle --------------------------------------------------------------------------
    def start(self, timeout: float = 5.0) -> RemoteServer:
        """Start serving (returns once listening; raises what prevented it)."""
        self._thread = threading.Thread(target=self._run, name="remote-control", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("The remote-control server did not start")
        if self._error is not None:
            raise self._error
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and join the thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> RemoteServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            self._server = loop.run_until_complete(
                asyncio.start_server(self._serve, self.host, self.port, limit=MAX_LINE)
            )
            self.port = self._server.sockets[0].getsockname()[1]
        except BaseException as err:
            self._error = err
            self._ready.set()
            loop.close()
            return
        logger.info("Remote control listening on %s", self.url)
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            loop.run_until_complete(self._server.wait_closed())
            loop.close()

    # ---- connections ------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            while True:  # one request per line until the client closes or is refused
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    await self._reply(writer, None, error="request line too long")
                    return
                if not line:
                    return
                if not await self._handle(line, writer, peer):
                    return
        except (ConnectionError, OSError):
            return
        finally:
            writer.close()

    async def _handle(self, line: bytes, writer: asyncio.StreamWriter, peer: Any) -> bool:
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("not an object")
        except ValueError as err:
            self.refused += 1
            logger.warning("Remote control: malformed request from %s refused: %s", peer, err)
            await self._reply(writer, None, error=f"malformed request: {err}")
            return False
        rid = request.get("id")
        who = _authenticate(self.tokens, request.get("token"))
        if who is None:
            self.refused += 1
            logger.warning("Remote control: bad or missing token from %s: refused", peer)
            await asyncio.sleep(0.05)  # no fast guessing
            await self._reply(writer, rid, error="unauthorized")
            return False
        op, args = request.get("op"), request.get("args") or {}
        if op not in OPERATIONS or not isinstance(args, dict):
            await self._reply(writer, rid, error=f"unknown operation {op!r}; one of {OPERATIONS}")
            return True
        logger.info("Remote control: %s from %s (%s)", op, who, peer)
        try:
            result = await asyncio.get_running_loop().run_in_executor(
                None, self._execute, op, args, who
            )
        except Exception as err:
            await self._reply(writer, rid, error=f"{type(err).__name__}: {err}")
            return True
        await self._reply(writer, rid, result=result)
        return True

    async def _reply(self, writer: asyncio.StreamWriter, rid: Any, **fields: Any) -> None:
        reply = {"id": rid, "ok": "error" not in fields, **fields}
        writer.write(json.dumps(reply, default=str).encode() + b"\n")
        await writer.drain()

    # ---- operations (in a worker thread: engine calls may block a little) ------------------
    def _execute(self, op: str, args: dict, who: str) -> Any:
        RE = self.RE
        if op == "ping":
            return "pong"
        if op == "state":
            return self._state()
        if op == "agents":
            return {} if self.registry is None else self.registry.status()
        if op == "locks":
            return [_describe_lock(lock) for lock in self.locks]
        if op == "pause":
            name = args.get("name") or f"remote:{who}"
            RE.request_pause(bool(args.get("defer", True)), name=name)
            return self._state()
        if op == "panic":
            RE.panic()
            return self._state()
        if op == "abort":
            return self._background(RE.abort, args.get("reason") or f"remote abort by {who}")
        method = {"resume": RE.resume, "stop": RE.stop, "halt": RE.halt, "all_is_well": None}
        return self._background(method[op] or RE.all_is_well)

    def _state(self) -> dict:
        RE = self.RE
        return {
            "state": str(RE.state),
            "pause_requests": sorted(RE.pause_requests),
            "suspenders": len(getattr(RE, "suspenders", ())),
        }

    def _background(self, func: Any, *args: Any) -> dict:
        """Run a control call that may block (it runs the plan on); wait ``wait`` s for it."""
        box: dict[str, Any] = {}

        def call() -> None:
            try:
                box["result"] = func(*args)
            except BaseException as err:
                box["error"] = err

        thread = threading.Thread(target=call, name=f"remote-{func.__name__}", daemon=True)
        thread.start()
        thread.join(self.wait)
        reply = self._state()
        if thread.is_alive():
            reply["pending"] = True  # e.g. a resumed plan goes on running
        elif "error" in box and type(box["error"]).__name__ != "RunEngineInterrupted":
            raise box["error"]
        elif isinstance(box.get("result"), list):
            reply["blocked_by"] = box["result"]  # resume refused by named pause requests
        return reply


def _describe_lock(lock: Any) -> dict:
    holder = lock.holder
    info = None
    if holder is not None:
        info = {"job": holder.job, "owner": holder.owner, "since": holder.since,
                "waiters": list(holder.waiters)}  # fmt: skip
    return {"name": lock.name, "kind": type(lock).__name__, "holder": info}


class RemoteClient:
    """A client of :class:`RemoteServer`: ``RemoteClient("tcp://127.0.0.1:8765", token=...)``.

    One connection, reopened as needed; every call bounded by ``timeout``.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        token_file: str | os.PathLike | None = None,
        timeout: float = 10.0,
    ) -> None:
        if token is None:
            if token_file is None:
                raise ValueError("RemoteClient needs a token or a token_file")
            token = next(iter(read_tokens(token_file).values()))
        host, _, port = url.removeprefix("tcp://").rpartition(":")
        self.address = (host or "127.0.0.1", int(port))
        self._token = token
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._file: Any = None
        self._next = 0

    def close(self) -> None:
        if self._sock is not None:
            self._file.close()
            self._sock.close()
            self._sock = self._file = None

    def __enter__(self) -> RemoteClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def call(self, op: str, **args: Any) -> Any:
        """Send one request; its result, or RemoteError/Unauthorized."""
        for attempt in (0, 1):  # a server-closed connection is reopened once
            if self._sock is None:
                self._sock = socket.create_connection(self.address, timeout=self.timeout)
                self._file = self._sock.makefile("rwb")
            self._next += 1
            request = {"id": self._next, "token": self._token, "op": op, "args": args}
            try:
                self._file.write(json.dumps(request).encode() + b"\n")
                self._file.flush()
                line = self._file.readline(MAX_LINE)
            except OSError:
                self.close()
                if attempt:
                    raise
                continue
            if not line:
                self.close()
                if attempt:
                    raise RemoteError("The server closed the connection")
                continue
            reply = json.loads(line)
            if reply.get("ok"):
                return reply.get("result")
            if reply.get("error") == "unauthorized":
                self.close()
                raise Unauthorized("unauthorized: the server refused the token")
            raise RemoteError(reply.get("error"))
        raise RemoteError("unreachable")

    def state(self) -> dict:
        return self.call("state")

    def pause(self, defer: bool = True, name: str | None = None) -> dict:
        return self.call("pause", defer=defer, name=name)

    def resume(self) -> dict:
        return self.call("resume")

    def stop(self) -> dict:
        return self.call("stop")

    def abort(self, reason: str = "") -> dict:
        return self.call("abort", reason=reason)

    def halt(self) -> dict:
        return self.call("halt")

    def panic(self) -> dict:
        return self.call("panic")

    def all_is_well(self) -> dict:
        return self.call("all_is_well")

    def agents(self) -> dict:
        return self.call("agents")

    def locks(self) -> list:
        return self.call("locks")
