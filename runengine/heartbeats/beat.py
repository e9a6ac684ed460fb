"""The RunEngine as a heartbeat source: its state as an op code, beaten into a registry.

beat = RegistryBeat(RE, reg, address="re.main").start()   # RE state -> op code, 1 Hz
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

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

    A beat is sent only after the engine's event loop answered, so a stalled loop goes silent
    and the registry expires the engine. One thread, started by ``start()`` or ``with``.
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
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._token: int | None = None

    def op_codes(self) -> dict[str, OpCode]:
        return {self.op_name: opcode_of_state(str(self.RE.state), self.last_exit_status)}

    def beat(self) -> None:
        """Beat once now (the thread does this every period)."""
        self.registry.beat(self.address, self.op_codes(), self.agent_class, self.session_id)

    def start(self) -> RegistryBeat:
        if self._thread is None:
            self._token = self.RE.subscribe(self._on_stop, "stop")
            self._halt.clear()
            self._thread = threading.Thread(target=self._run, name="registry-beat", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._halt.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
        if self._token is not None:
            self.RE.unsubscribe(self._token)
            self._token = None

    def __enter__(self) -> RegistryBeat:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _on_stop(self, name: str, doc: dict) -> None:
        self.last_exit_status = doc.get("exit_status")

    def _run(self) -> None:
        loop: asyncio.AbstractEventLoop = self.RE._loop
        answered = threading.Event()
        while not self._halt.is_set():
            answered.clear()
            try:
                loop.call_soon_threadsafe(answered.set)
                if answered.wait(self.period) and not self._halt.is_set():
                    self.beat()
            except Exception as exc:  # a closed loop, a failing subscriber: report, go on
                self.errors.append(exc)
            self._halt.wait(self.period)
