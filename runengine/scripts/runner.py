"""Run external scripts as abortable subprocesses, with a status channel.

A script runs under a supervisor process of its own (:mod:`runengine.scripts.supervisor`), in
its own session, stdin closed, stdout and stderr captured line by line. An abort sends each
signal of the abort sequence to every process the script started, at any depth and in whatever
session or process group, and waits for all of them to go before escalating; processes a script
leaves behind when it exits are ended too. No shell is involved. Each running script is a
:class:`ScriptRun` (:mod:`runengine.scripts.supervision`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .channel import StatusChannel
from .launch import acquire, call, check_args, environment, script_argv
from .process import OutputSink
from .results import DEFAULT_ABORT_SEQUENCE, NoScriptRunning, ScriptResult
from .supervision import ScriptRun, logger
from .supervisor import Supervisor

__all__ = ["ScriptRun", "ScriptRunner", "logger"]

_LOG = logger


class ScriptRunner:
    """Run scripts as subprocesses and abort them; usable with or without a RunEngine.

    ``abort_sequence`` is ``((signal, grace_seconds), ...)``: each signal goes to the script
    and every process it started, and the next one only if one of them outlives the grace
    period (the last step's grace is at least 1 s). An engine that exits or dies mid-run has its
    supervisor end the run with this sequence too.
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
            sequence = self.abort_sequence if abort_sequence is None else tuple(abort_sequence)
            supervisor = await Supervisor.spawn(argv, full_env, cwd, script, sequence, sink.note)
        except BaseException:
            if channel is not None:
                channel.close()
            sink.close()
            if taken:
                await call(lock.release)
            raise
        result.pid = supervisor.pid
        run = ScriptRun(
            self,
            supervisor,
            result,
            channel,
            sink,
            lock if taken else None,
            timeout=timeout,
            drain=self.drain if drain is None else drain,
            on_status=on_status,
        )
        with self._guard:
            self._active.append(run)
        sink.note(f"started pid {supervisor.pid}: {' '.join(argv)}")
        if not supervisor.subreaper:
            sink.note(
                "no child subreaper here: only the script's process group is covered",
                logging.WARNING,
            )
        run._status("spawned", {"pid": supervisor.pid, "argv": argv})
        return run

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

        With ``wait`` (and off the scripts' loop) return once they and all they started are gone.
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
