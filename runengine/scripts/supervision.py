"""Supervising one running script: its exit, timeout and abort, and what it left behind.

:meth:`~runengine.scripts.runner.ScriptRunner.start` makes a :class:`ScriptRun` once the
script is spawned. It waits for the script to exit (or aborts it at its timeout), runs the abort
sequence on its whole process group, ends the processes it leaves behind, collects its output
and status channel into its :class:`~runengine.scripts.results.ScriptResult`, and releases its
lock.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import signal
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .channel import StatusChannel
from .launch import call
from .process import OutputSink, group_members, kill_group, pump_lines, wait_group_gone
from .results import ScriptResult

if TYPE_CHECKING:
    from .runner import ScriptRunner

__all__ = ["LEFTOVER_SEQUENCE", "ScriptRun", "logger"]

logger = logging.getLogger("runengine.scripts")

#: How processes left behind by a script that exited are ended.
LEFTOVER_SEQUENCE = ((signal.SIGTERM, 1.0), (signal.SIGKILL, 5.0))
_PIPE_GRACE = 1.0  # after the group is gone, how long its output may take to arrive


class ScriptRun:
    """One running script: :meth:`wait` for its result, :meth:`abort` it."""

    def __init__(
        self,
        runner: ScriptRunner,
        proc: asyncio.subprocess.Process,
        exited: asyncio.Future,
        result: ScriptResult,
        channel: StatusChannel | None,
        sink: OutputSink,
        lock: Any,
        *,
        timeout: float | None,
        drain: float,
        abort_sequence: Sequence[tuple[int, float]],
        on_status: Callable[[dict], Any] | None,
    ) -> None:
        self.runner = runner
        self.proc = proc
        self._exited = exited
        self.pid = self.pgid = proc.pid
        self.result = result
        self.channel = channel
        self.sink = sink
        self.lock = lock
        self.timeout = timeout
        self.drain = drain
        self.abort_sequence = tuple(abort_sequence)
        self.on_status = on_status
        self.loop = asyncio.get_running_loop()
        self.started = time.monotonic()
        self._stdout: deque[str] = deque(maxlen=runner.tail)
        self._stderr: deque[str] = deque(maxlen=runner.tail)
        self._pumps = [
            asyncio.ensure_future(pump_lines(proc.stdout, "stdout", self._stdout, sink)),
            asyncio.ensure_future(pump_lines(proc.stderr, "stderr", self._stderr, sink)),
        ]
        self._abort_task: asyncio.Task | None = None
        self._done = asyncio.ensure_future(self._supervise())

    @property
    def done(self) -> bool:
        return self._done.done()

    async def wait(self) -> ScriptResult:
        """The result once the script and everything it started are gone (never raises)."""
        return await asyncio.shield(self._done)

    async def abort(self, reason: str = "aborted") -> ScriptResult:
        """Run the abort sequence on the whole process group (once); return the result."""
        task = self._begin_abort(reason)
        if task is not None:
            await asyncio.shield(task)
        return await self.wait()

    def _begin_abort(self, reason: str) -> asyncio.Future | None:
        if self._abort_task is None and not self._done.done():
            self.result.aborted = True
            self.result.abort_reason = reason
            self._abort_task = asyncio.ensure_future(self._signal(self.abort_sequence, reason))
        return self._abort_task

    def abort_threadsafe(self, reason: str = "aborted") -> concurrent.futures.Future:
        """:meth:`abort` from any thread."""
        return asyncio.run_coroutine_threadsafe(self.abort(reason), self.loop)

    async def _signal(self, sequence: Sequence[tuple[int, float]], why: str) -> bool:
        """Signal the group step by step until it is empty; True if it is."""
        for sig, grace in sequence:
            if not group_members(self.pgid):
                return True
            self.sink.note(
                f"{why}: sending {signal.Signals(sig).name} to process group {self.pgid}"
            )
            if not kill_group(self.pgid, sig):
                return True
            if await wait_group_gone(self.pgid, grace):
                return True
        alive = group_members(self.pgid)
        if alive:
            self.sink.note(f"processes {alive} survived the abort sequence", logging.ERROR)
        return not alive

    async def _supervise(self) -> ScriptResult:
        result, proc = self.result, self.proc
        exited = self._exited
        try:
            try:
                await asyncio.wait_for(asyncio.shield(exited), self.timeout)
            except TimeoutError:
                result.timed_out = True
                await asyncio.shield(self._begin_abort(f"timeout after {self.timeout} s"))
                await exited
            if self._abort_task is not None:
                await asyncio.shield(self._abort_task)
            result.returncode = proc.returncode
            result.signal = -proc.returncode if proc.returncode < 0 else None
            result.duration = time.monotonic() - self.started
            if self.channel is not None:
                await self.channel.drain(0.0 if result.aborted else self.drain)
            leftovers = group_members(self.pgid)
            if leftovers:
                result.leftovers_killed = len(leftovers)
                await self._signal(LEFTOVER_SEQUENCE, f"{len(leftovers)} process(es) left behind")
            _, pending = await asyncio.wait(self._pumps, timeout=_PIPE_GRACE)
            for pump in pending:  # a process outside the group still holds the pipe
                pump.cancel()
            self.sink.note(self._describe_exit())
            self._status("exited", {"returncode": result.returncode, "signal": result.signal})
            return result
        finally:
            for pump in self._pumps:
                pump.cancel()
            result.stdout_tail = list(self._stdout)
            result.stderr_tail = list(self._stderr)
            if self.channel is not None:
                self.channel.close()
                self._copy_channel()
            self.sink.close()
            self.runner._forget(self)
            if self.lock is not None:
                try:
                    await call(self.lock.release)
                except Exception as err:
                    logger.error("Failed to release the lock of %s: %r", result.script, err)

    def _describe_exit(self) -> str:
        r = self.result
        how = f"code {r.returncode}" if r.signal is None else signal.Signals(r.signal).name
        extra = f" (aborted: {r.abort_reason})" if r.aborted else ""
        return f"exited with {how} after {r.duration:.3f} s{extra}"

    def _copy_channel(self) -> None:
        ch, r = self.channel, self.result
        r.session_data = ch.session_data
        r.messages = ch.messages
        r.warnings = ch.warnings
        r.datagrams, r.malformed, r.oversized = ch.datagrams, ch.malformed, ch.oversized
        r.foreign, r.seq_gaps = ch.foreign, ch.seq_gaps

    def _status(self, kind: str, payload: dict) -> None:
        if self.on_status is None:
            return
        msg = {
            "host": socket.gethostname(),
            "id": self.result.run_id,
            "script": self.result.script_id,
            "time": time.time(),
            "seq_no": None,
            "type": kind,
            "payload": payload,
        }
        try:
            self.on_status(msg)
        except Exception as err:
            logger.warning("status callback failed: %r", err)
