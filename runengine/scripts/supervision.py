"""Supervising one running script: its exit, timeout and abort, and what it left behind.

:meth:`~runengine.scripts.runner.ScriptRunner.start` makes a :class:`ScriptRun` once the
script is spawned under its :class:`~runengine.scripts.supervisor.Supervisor`. It waits for the
script to exit (or aborts it at its timeout), has the supervisor run the abort sequence on every
process the script started, ends the processes it leaves behind, collects its output and status
channel into its :class:`~runengine.scripts.results.ScriptResult`, and releases its lock.
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
from .process import OutputSink, pump_lines
from .results import ScriptResult, _signal_name
from .supervisor import Supervisor

if TYPE_CHECKING:
    from .runner import ScriptRunner

__all__ = ["LEFTOVER_SEQUENCE", "ScriptRun", "logger"]

logger = logging.getLogger("runengine.scripts")

#: How processes left behind by a script that exited are ended.
LEFTOVER_SEQUENCE = ((signal.SIGTERM, 1.0), (signal.SIGKILL, 5.0))
_PIPE_GRACE = 1.0  # after every process is gone, how long its output may take to arrive


class ScriptRun:
    """One running script: :meth:`wait` for its result, :meth:`abort` it."""

    def __init__(
        self,
        runner: ScriptRunner,
        supervisor: Supervisor,
        result: ScriptResult,
        channel: StatusChannel | None,
        sink: OutputSink,
        lock: Any,
        *,
        timeout: float | None,
        drain: float,
        on_status: Callable[[dict], Any] | None,
    ) -> None:
        self.runner = runner
        self.supervisor = supervisor
        self._exited = supervisor.exited
        #: The script's pid, also its session and process group id.
        self.pid = self.pgid = supervisor.pid
        self.supervisor_pid = supervisor.supervisor_pid
        self.result = result
        self.channel = channel
        self.sink = sink
        self.lock = lock
        self.timeout = timeout
        self.drain = drain
        self.abort_sequence = supervisor.sequence
        self.on_status = on_status
        self.loop = asyncio.get_running_loop()
        self.started = time.monotonic()
        self._stdout: deque[str] = deque(maxlen=runner.tail)
        self._stderr: deque[str] = deque(maxlen=runner.tail)
        proc = supervisor.proc
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
        """Run the abort sequence on the script and all it started (once); return the result."""
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

    async def _signal(self, sequence: Sequence[tuple[int, float]], why: str) -> int:
        """Have the supervisor run ``sequence`` on every process of the run; how many it found."""
        found, survivors = await self.supervisor.end(sequence, why)
        if survivors:
            self.result.survivors = sorted(set(self.result.survivors) | set(survivors))
            self.sink.note(f"processes {survivors} survived the abort sequence", logging.ERROR)
        return found

    async def _supervise(self) -> ScriptResult:
        result, exited = self.result, self._exited
        try:
            try:
                await asyncio.wait_for(asyncio.shield(exited), self.timeout)
            except TimeoutError:
                result.timed_out = True
                await asyncio.shield(self._begin_abort(f"timeout after {self.timeout} s"))
            if self._abort_task is not None:
                await asyncio.shield(self._abort_task)
                if not exited.done():  # it survived even SIGKILL (uninterruptible sleep)
                    await asyncio.wait([exited], timeout=_PIPE_GRACE)
            returncode = exited.result() if exited.done() else None
            result.returncode = returncode
            result.signal = -returncode if returncode is not None and returncode < 0 else None
            result.duration = time.monotonic() - self.started
            if self.channel is not None:
                await self.channel.drain(0.0 if result.aborted else self.drain)
            result.leftovers_killed = await self._signal(LEFTOVER_SEQUENCE, "left behind")
            if result.leftovers_killed:
                self.sink.note(f"ended {result.leftovers_killed} process(es) left behind")
            await self.supervisor.close()
            _, pending = await asyncio.wait(self._pumps, timeout=_PIPE_GRACE)
            for pump in pending:  # a process that escaped still holds the pipe
                pump.cancel()
            self.sink.note(self._describe_exit())
            self._status("exited", {"returncode": result.returncode, "signal": result.signal})
            return result
        finally:
            if not self.supervisor.lost:  # cancelled: the supervisor ends the rest by itself
                self.supervisor._abandon()
            for pump in self._pumps:
                pump.cancel()
            self.supervisor.dispose()
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
        how = f"code {r.returncode}" if r.signal is None else _signal_name(r.signal)
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
