"""Run external scripts as abortable subprocesses, with a status channel.

A script runs in its own session (so its own process group), stdin closed, stdout and stderr
captured line by line. An abort sends each signal of the abort sequence to the whole group and
waits for every process in it to go before escalating; processes a script leaves behind when it
exits are ended too. No shell is involved. Each running script is a :class:`ScriptRun`
(:mod:`runengine.scripts.supervision`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import signal
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .channel import StatusChannel
from .launch import acquire, call, check_args, environment, script_argv
from .process import OutputSink
from .results import (
    DEFAULT_ABORT_SEQUENCE,
    NoScriptRunning,
    ScriptError,
    ScriptNotExecutable,
    ScriptNotFound,
    ScriptResult,
)
from .supervision import ScriptRun, logger

__all__ = ["ScriptRun", "ScriptRunner", "logger"]

_LOG = logger


def _default_sigint() -> None:  # in the child, between fork and exec
    # A parent started with SIGINT ignored (`cmd &` in a script, nohup, some CI runners) passes
    # the ignore on through exec: the script would never see the abort's SIGINT.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class _Protocol(asyncio.subprocess.SubprocessStreamProtocol):
    """Tells when the process exits, before its pipes close (``Process.wait`` waits for both,
    and a process left behind may hold them open)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=2**16, loop=loop)
        self.exited = loop.create_future()

    def process_exited(self) -> None:
        super().process_exited()
        if not self.exited.done():
            self.exited.set_result(None)


class ScriptRunner:
    """Run scripts as subprocesses and abort them; usable with or without a RunEngine.

    ``abort_sequence`` is ``((signal, grace_seconds), ...)``: each signal goes to the script's
    whole process group, and the next one only if a process of it outlives the grace period.
    ``log=True`` logs output to ``logger`` (default: the ``runengine.scripts`` logger).
    """

    def __init__(
        self,
        *,
        abort_sequence: Sequence[tuple[int, float]] = DEFAULT_ABORT_SEQUENCE,
        logger: logging.Logger | None = None,
        prefix: str = "SMURFPUB_",
        drain: float = 1.0,
        tail: int = 100,
    ) -> None:
        self.abort_sequence = tuple(abort_sequence)
        self.logger = logger or _LOG
        self.prefix = prefix
        self.drain = drain
        self.tail = tail
        self._active: list[ScriptRun] = []
        self._guard = threading.Lock()

    @property
    def running(self) -> list[ScriptRun]:
        """The runs not finished yet."""
        with self._guard:
            return list(self._active)

    def _forget(self, run: ScriptRun) -> None:
        with self._guard:
            if run in self._active:
                self._active.remove(run)

    async def start(
        self,
        script: str | os.PathLike,
        args: Sequence[Any] = (),
        *,
        log: Any = True,
        env: Mapping[str, str | None] | None = None,
        cwd: str | os.PathLike | None = None,
        timeout: float | None = None,
        lock: Any = None,
        job: str | None = None,
        lock_timeout: float = 0.0,
        publisher: bool = True,
        drain: float | None = None,
        abort_sequence: Sequence[tuple[int, float]] | None = None,
        interpreter: Sequence[str] | str | None = None,
        on_status: Callable[[dict], Any] | None = None,
    ) -> ScriptRun:
        """Check the request, take the lock, open the channel and spawn the script.

        Raises ScriptNotFound, ScriptNotExecutable, TypeError, LockUnavailable or ScriptError
        before anything runs; the lock is not held after a failure.
        """
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be positive seconds or None, not {timeout!r}")
        argv = script_argv(script, args, cwd, interpreter)
        full_env = environment(env)
        name = os.path.basename(os.fspath(script))
        job = job or name
        run_id = f"{name}-{uuid.uuid4().hex[:12]}"
        result = ScriptResult(
            script=os.fspath(script), args=check_args(args), script_id=name, run_id=run_id
        )
        sink = OutputSink(log, self.logger, name)
        channel = None
        taken = False
        try:
            if lock is not None:
                await acquire(lock, job, lock_timeout)
                taken = True
            if publisher:
                channel = StatusChannel(run_id, note=sink.note, on_status=on_status)
                await channel.open()
                full_env.update(channel.env(self.prefix))
            proc, exited = await self._spawn(argv, full_env, cwd, script)
        except BaseException:
            if channel is not None:
                channel.close()
            sink.close()
            if taken:
                await call(lock.release)
            raise
        result.pid = proc.pid
        run = ScriptRun(
            self,
            proc,
            exited,
            result,
            channel,
            sink,
            lock if taken else None,
            timeout=timeout,
            drain=self.drain if drain is None else drain,
            abort_sequence=self.abort_sequence if abort_sequence is None else abort_sequence,
            on_status=on_status,
        )
        with self._guard:
            self._active.append(run)
        sink.note(f"started pid {proc.pid}: {' '.join(argv)}")
        run._status("spawned", {"pid": proc.pid, "argv": argv})
        return run

    @staticmethod
    async def _spawn(argv: list[str], env: dict, cwd: Any, script: Any) -> tuple:
        loop = asyncio.get_running_loop()
        try:
            transport, protocol = await loop.subprocess_exec(
                lambda: _Protocol(loop),
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=_default_sigint,
            )
            return asyncio.subprocess.Process(transport, protocol, loop), protocol.exited
        except FileNotFoundError as err:
            raise ScriptNotFound(f"Cannot start {script!r}: {err}") from err
        except PermissionError as err:
            raise ScriptNotExecutable(f"Cannot start {script!r}: {err}") from err
        except OSError as err:
            raise ScriptError(f"Cannot start {script!r}: {err}") from err

    async def run_async(
        self, script: str | os.PathLike, args: Sequence[Any] = (), *, check: bool = True, **options
    ) -> ScriptResult:
        """Run ``script`` to its end; cancelling this aborts it. See :meth:`start` for options.

        With ``check=True`` a failure raises ScriptFailed, ScriptAborted or ScriptTimeout.
        """
        run = await self.start(script, args, **options)
        try:
            result = await run.wait()
        except asyncio.CancelledError:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(run.abort("cancelled"))
            raise
        return result.check() if check else result

    def run(
        self, script: str | os.PathLike, args: Sequence[Any] = (), *, check: bool = True, **options
    ) -> ScriptResult:
        """Run ``script`` to its end in this thread (Ctrl+C aborts it and is re-raised)."""
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop()
            raise RuntimeError("An event loop runs in this thread: use `await run_async(...)`")
        return asyncio.run(self.run_async(script, args, check=check, **options))

    def abort(self, reason: str = "aborted", *, wait: bool = True, strict: bool = False) -> bool:
        """Abort every running script of this runner, from any thread.

        With ``wait`` (and off the scripts' loop) return once their process groups are gone.
        With nothing running: log a message and return False (``strict``: NoScriptRunning).
        """
        runs = [run for run in self.running if not run.done]
        if not runs:
            if strict:
                raise NoScriptRunning("No script is running: nothing to abort")
            self.logger.info("No script is running: nothing to abort")
            return False
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        for run in runs:
            if run.loop is here:
                run._begin_abort(reason)
                continue
            future = run.abort_threadsafe(reason)
            if wait:
                budget = sum(grace for _, grace in run.abort_sequence) + 10.0
                with contextlib.suppress(concurrent.futures.TimeoutError):
                    future.result(budget)
        return True
