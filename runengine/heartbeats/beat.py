"""The RunEngine as a heartbeat source: its state as an op code, beaten into a registry.

beat = RegistryBeat(RE, reg, address="re.main").start()   # RE state -> op code, 1 Hz
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

from ..loop import settle
from .local import OpCode, Registry

__all__ = ["RegistryBeat", "opcode_of_state"]


def opcode_of_state(state: str, last_exit_status: str | None) -> OpCode:
    """The op code of a RunEngine in ``state`` whose last run ended with ``last_exit_status``
    (None: no run yet)."""
    if state == "running":
        return OpCode.RUNNING
    if state == "suspending":
        return OpCode.DEGRADED
    if state in ("pausing", "paused", "stopping", "aborting", "halting"):
        return OpCode.STOPPING
    if state == "idle":
        if last_exit_status is None:
            return OpCode.NONE
        return OpCode.SUCCEEDED if last_exit_status == "success" else OpCode.FAILED
    return OpCode.FAILED  # panicked


class RegistryBeat:
    """Beat for a RunEngine every ``period`` seconds: ``{op_name: opcode_of_state(...)}``.

    The beats are timers on the engine's own event loop, so a stalled loop goes silent and the
    registry expires the engine; no thread of its own. ``start()`` (or ``with``) begins,
    ``stop()`` ends: after it returns no beat is sent. Errors (a failing registry) are kept in
    ``errors`` and the beats go on.
    """

    def __init__(
        self,
        RE: Any,
        registry: Registry,
        address: str = "re.main",
        period: float = 1.0,
        op_name: str = "run",
        agent_class: str = "RunEngine",
    ) -> None:
        self.RE = RE
        self.registry = registry
        self.address = address
        self.period = float(period)
        self.op_name = op_name
        self.agent_class = agent_class
        self.session_id = uuid.uuid4().hex
        self.last_exit_status: str | None = None
        self.errors: list[BaseException] = []
        self._loop: asyncio.AbstractEventLoop = RE.loop
        self._lock = threading.Lock()  # start() and stop() from any thread, one at a time
        # Each start() and stop() begins a new generation: a timer of an older one ends.
        self._generation = 0
        self._beating = False
        self._token: int | None = None

    def op_codes(self) -> dict[str, OpCode]:
        return {self.op_name: opcode_of_state(str(self.RE.state), self.last_exit_status)}

    def beat(self) -> None:
        """Beat once now (the engine's loop does this every period)."""
        self.registry.beat(self.address, self.op_codes(), self.agent_class, self.session_id)

    def start(self) -> RegistryBeat:
        """Begin beating (idempotent); returns the beat."""
        with self._lock:
            if not self._beating:
                self._token = self.RE.subscribe(self._on_stop, "stop")
                self._generation += 1
                self._beating = True
                self._loop.call_soon_threadsafe(self._tick, self._generation)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop beating; a beat the loop is sending now ends first (at most ``timeout`` s)."""
        with self._lock:
            if not self._beating:
                return
            self._generation += 1
            self._beating = False
            if self._token is not None:
                self.RE.unsubscribe(self._token)
                self._token = None
        settle(self._loop, timeout)

    def __enter__(self) -> RegistryBeat:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _on_stop(self, name: str, doc: dict) -> None:
        self.last_exit_status = doc.get("exit_status")

    def _tick(self, generation: int) -> None:
        """On the engine's loop: beat, and come back in a period (unless stopped since)."""
        if generation != self._generation:
            return
        try:
            self.beat()
        except Exception as exc:  # a failing registry or subscriber: report, go on
            self.errors.append(exc)
        self._loop.call_later(self.period, self._tick, generation)
