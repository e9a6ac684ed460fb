"""Process-group signalling and line-by-line output capture for script runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from typing import IO, Any

from .subreaper import proc_stats

__all__ = ["OutputSink", "group_members", "kill_group", "pump_lines", "wait_group_gone"]

_CHUNK = 65536
_MAX_LINE = 1 << 20  # a "line" longer than this is cut into pieces


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid``."""
    if not os.path.isdir("/proc"):
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    return [
        pid
        for pid, fields in proc_stats()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X")
    ]


def kill_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to the group; False if nobody is left in it."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


async def wait_group_gone(pgid: int, timeout: float, interval: float = 0.01) -> bool:
    """Wait until no live process is left in the group; False on timeout."""
    deadline = time.monotonic() + timeout
    while group_members(pgid):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)
        interval = min(interval * 1.5, 0.1)
    return True


class OutputSink:
    """Where output lines go: a logger, a file (opened per run, closed after), or nowhere."""

    def __init__(self, log: Any, logger: logging.Logger, name: str) -> None:
        self.name = name
        self.logger: logging.Logger | None = None
        self.file: IO[str] | None = None
        if isinstance(log, logging.Logger):
            self.logger = log
        elif log is True:
            self.logger = logger
        elif isinstance(log, str | os.PathLike):
            self.file = open(log, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        elif log not in (False, None):
            raise TypeError(f"log must be True, False, a path or a logging.Logger, not {log!r}")

    def line(self, stream: str, text: str) -> None:
        if self.logger is not None:
            level = logging.INFO if stream == "stdout" else logging.WARNING
            self.logger.log(level, "[%s %s] %s", self.name, stream, text)
        elif self.file is not None:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
            self.file.write(f"{stamp} {self.name} {stream}: {text}\n")

    def note(self, text: str, level: int = logging.INFO) -> None:
        """A line from the runner itself (start, exit, abort)."""
        if self.logger is not None:
            self.logger.log(level, "[%s] %s", self.name, text)
        elif self.file is not None:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
            self.file.write(f"{stamp} {self.name} runner: {text}\n")

    def close(self) -> None:
        if self.file is not None:
            with contextlib.suppress(OSError):
                self.file.close()


async def pump_lines(
    reader: asyncio.StreamReader, stream: str, tail: deque, sink: OutputSink
) -> None:
    """Read ``reader`` to its end, one line at a time (joined across reads), into tail and sink.

    Bytes are decoded as UTF-8 with replacement characters, line by line.
    """
    pending = b""
    while True:
        chunk = await reader.read(_CHUNK)
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        while len(pending) > _MAX_LINE:
            lines.append(pending[:_MAX_LINE])
            pending = pending[_MAX_LINE:]
        for raw in lines:
            _emit(raw, stream, tail, sink)
    if pending:
        _emit(pending, stream, tail, sink)


def _emit(raw: bytes, stream: str, tail: deque, sink: OutputSink) -> None:
    text = raw.rstrip(b"\r").decode("utf-8", errors="replace")
    tail.append(text)
    sink.line(stream, text)
