"""The engine's side of a run's supervisor process (the program in ``subreaper.py``).

Each script run gets a small supervisor process of its own, started here: a child subreaper
that runs the script and ends every process the script started, whatever session or process
group it moved to (see :mod:`runengine.scripts.subreaper`). The engine talks to it over a Unix
socket pair: it learns the script's pid and exit code, and asks it to run an abort sequence on
everything below it. If the engine dies, the socket closes and the supervisor ends the whole
tree by itself. Why a process and not the engine itself: being a subreaper is process-wide
state, and would make every orphan of any library's subprocess the engine's zombie to reap,
racing ``subprocess``' and asyncio's own ``waitpid``; and a supervisor outlives an engine that
crashes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .process import group_members, kill_group, wait_group_gone
from .results import ScriptError, ScriptNotExecutable, ScriptNotFound, _signal_name

__all__ = ["PROGRAM", "Supervisor"]

#: The supervisor program, run with the engine's interpreter.
PROGRAM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "subreaper.py")
_START_TIMEOUT = 30.0  # for the supervisor to start the script (a loaded machine)
_REPLY_MARGIN = 10.0  # beyond the sum of an ending's graces, before giving up on the reply


class _Protocol(asyncio.subprocess.SubprocessStreamProtocol):
    """Tells when the supervisor exits, before its pipes close (``Process.wait`` waits for
    both, and a process that survived may hold them open)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=2**16, loop=loop)
        self.exited = loop.create_future()

    def process_exited(self) -> None:
        super().process_exited()
        if not self.exited.done():
            self.exited.set_result(None)


def _budget(sequence: Sequence[tuple[int, float]]) -> float:
    return sum(max(0.0, grace) for _, grace in sequence) + _REPLY_MARGIN


class Supervisor:
    """One run's supervisor process: the script's ``pid``, its ``exited`` code, :meth:`end`."""

    def __init__(
        self,
        transport: asyncio.SubprocessTransport,
        protocol: _Protocol,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        sequence: Sequence[tuple[int, float]],
        note: Callable[..., Any],
    ) -> None:
        loop = asyncio.get_running_loop()
        self.proc = asyncio.subprocess.Process(transport, protocol, loop)
        self._transport = transport
        self.supervisor_pid = self.proc.pid
        self.pid: int | None = None  # the script's, once it runs
        self.subreaper = False
        self.sequence = tuple(sequence)
        self.note = note
        self.exited: asyncio.Future = loop.create_future()  # the script's return code
        self.lost = False  # the control connection closed: the supervisor is gone
        self._gone = protocol.exited
        self._writer = writer
        self._spawned: asyncio.Future = loop.create_future()
        self._replies: dict[int, asyncio.Future] = {}
        self._next_id = 0
        self._closing: asyncio.Future | None = None
        self._listener = asyncio.ensure_future(self._listen(reader))

    @classmethod
    async def spawn(
        cls,
        argv: list[str],
        env: Mapping[str, str],
        cwd: Any,
        script: Any,
        sequence: Sequence[tuple[int, float]],
        note: Callable[..., Any],
    ) -> Supervisor:
        """Start a supervisor that starts ``argv``; return once the script runs.

        Raises ScriptNotFound, ScriptNotExecutable or ScriptError if it cannot start.
        """
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        config = {"argv": argv, "sequence": [list(step) for step in sequence]}
        config["parent"] = os.getpid()
        try:
            transport, protocol = await loop.subprocess_exec(
                lambda: _Protocol(loop),
                sys.executable or "python3",
                "-I",
                "-S",
                PROGRAM,
                json.dumps(config),
                stdin=theirs.fileno(),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
            )
        except BaseException as err:
            ours.close()
            if isinstance(err, OSError):
                raise _start_error(script, err) from err
            raise
        finally:
            theirs.close()
        try:
            reader, writer = await asyncio.open_unix_connection(sock=ours, limit=2**20)
        except BaseException:
            ours.close()  # the supervisor reads end of file and exits
            raise
        sup = cls(transport, protocol, reader, writer, sequence, note)
        try:
            failure = await asyncio.wait_for(asyncio.shield(sup._spawned), _START_TIMEOUT)
        except TimeoutError:
            sup._abandon()
            raise ScriptError(
                f"Cannot start {script!r}: its supervisor did not start it in {_START_TIMEOUT} s"
            ) from None
        except BaseException:
            sup._abandon()
            raise
        if failure is not None:
            await sup.close()
            sup.dispose()
            if isinstance(failure, OSError):
                raise _start_error(script, failure) from failure
            raise failure
        return sup

    async def _listen(self, reader: asyncio.StreamReader) -> None:
        try:
            while line := await reader.readline():
                try:
                    self._dispatch(json.loads(line))
                except (ValueError, TypeError, KeyError) as err:
                    self.note(f"bad message from the supervisor {line!r}: {err!r}", logging.ERROR)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            self.lost = True
            if not self._spawned.done():
                self._spawned.set_result(
                    ScriptError(f"The supervisor {self.supervisor_pid} ended before the script")
                )
            if not self.exited.done():
                self.exited.set_result(None)
            for reply in self._replies.values():
                if not reply.done():
                    reply.set_result(None)

    def _dispatch(self, msg: dict) -> None:
        kind = msg["type"]
        if kind == "spawned":
            self.pid = int(msg["pid"])
            self.subreaper = bool(msg["subreaper"])
            self._spawned.set_result(None)
        elif kind == "spawn_failed":
            self._spawned.set_result(OSError(msg["errno"], msg["strerror"], msg["filename"]))
        elif kind == "exited":
            if not self.exited.done():
                self.exited.set_result(int(msg["returncode"]))
        elif kind == "signal":
            name = _signal_name(int(msg["signal"]))
            pids = msg["pids"]
            self.note(f"{msg['why']}: sending {name} to {len(pids)} process(es) {pids}")
        elif kind == "ended":
            reply = self._replies.pop(msg["id"], None)
            if reply is not None and not reply.done():
                reply.set_result((int(msg["found"]), [int(pid) for pid in msg["survivors"]]))

    async def end(self, sequence: Sequence[tuple[int, float]], why: str) -> tuple[int, list[int]]:
        """Run ``sequence`` on every live process below the supervisor (the script and all it
        started); return (how many were alive, the pids that survived it)."""
        if not self.lost:
            self._next_id += 1
            reply = asyncio.get_running_loop().create_future()
            self._replies[self._next_id] = reply
            command = {"cmd": "end", "id": self._next_id, "why": why}
            command["sequence"] = [list(step) for step in sequence]
            try:
                self._writer.write(json.dumps(command).encode() + b"\n")
                answer = await asyncio.wait_for(asyncio.shield(reply), _budget(sequence))
            except (OSError, TimeoutError):
                answer = None
            if answer is not None:
                return answer
        self.note(f"the supervisor {self.supervisor_pid} is gone or mute", logging.ERROR)
        return await self._end_group(sequence, why)

    async def _end_group(self, sequence: Sequence[tuple[int, float]], why: str) -> tuple:
        """Without a supervisor: the script's process group only, as a last resort."""
        if self.pid is None:
            return 0, []
        found = group_members(self.pid)
        for sig, grace in sequence:
            if not group_members(self.pid):
                break
            self.note(f"{why}: sending {_signal_name(sig)} to process group {self.pid}")
            if not kill_group(self.pid, sig) or await wait_group_gone(self.pid, grace):
                break
        return len(found), group_members(self.pid)

    async def close(self) -> None:
        """Let the supervisor go (it ends whatever is left first) and wait for it, bounded."""
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()
        try:
            await asyncio.wait_for(asyncio.shield(self._gone), _budget(self.sequence))
        except TimeoutError:
            self.note(f"the supervisor {self.supervisor_pid} did not exit: killing it")
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._gone), 5.0)
        await self._listener

    def dispose(self) -> None:
        """Close the pipes to a supervisor that has exited (a survivor may hold them open)."""
        if self._gone.done():
            self._transport.close()

    def _abandon(self) -> None:
        """Cancelled while starting: close the socket (the supervisor then ends the script by
        itself and exits) and wait for it in the background."""
        self._writer.close()
        self._closing = asyncio.ensure_future(self._close_then_dispose())

    async def _close_then_dispose(self) -> None:
        await self.close()
        self.dispose()


def _start_error(script: Any, err: OSError) -> ScriptError:
    what = f"Cannot start {script!r}: {err}"
    if isinstance(err, FileNotFoundError):
        return ScriptNotFound(what)
    if isinstance(err, PermissionError):
        return ScriptNotExecutable(what)
    return ScriptError(what)
