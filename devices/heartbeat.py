"""Feed a :class:`~runengine.heartbeats.Registry` from IOC heartbeat PVs, and read it as a Signal.

    reg = Registry(timeout=3.0).start()
    src = HeartbeatSource.from_device(reg, bl.health["pointdet"], address="ioc.pointdet").start()
    RE.install_suspender(SuspendOnExpired(reg, "ioc.pointdet", sleep=1.0))
    alive = alive_signal(reg, "ioc.pointdet")   # an ophyd Signal: True while alive
    RE.install_suspender(SuspendBoolLow(alive))  # stock bluesky works on it too

Every simulated IOC serves ``<prefix>HEARTBEAT``, a counter incremented every second. Each
change of the counter (a CA monitor update) is one beat; a frozen counter, a dead IOC or a lost
connection means no beats. A counter going backwards means the IOC restarted: the beats then
carry a new ``session_id``, which the registry publishes as a restart. Given the IOC's ``UPTIME``
(``from_device`` takes it), a restart is told by the IOC being younger than it should be, which
also catches a quick restart whose counter has not yet fallen below the last value seen.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ophyd import EpicsSignalRO, Signal

from runengine.heartbeats import OpCode, Registry

__all__ = ["HeartbeatSource", "alive_signal"]

RESTART_SLACK = 2.0  # seconds an IOC's uptime may lag behind ours before it counts as restarted


class HeartbeatSource:
    """One beat of ``address`` per change of the counter ``signal`` (an ophyd signal).

    ``op_codes``: sent with every beat (default ``{"ioc": RUNNING}``). ``start()``/``stop()``
    or ``with``; a signal made by :meth:`from_pv` is destroyed on ``stop()``.
    """

    def __init__(
        self,
        registry: Registry,
        address: str,
        signal: Any,
        *,
        agent_class: str = "CaprotoIOC",
        op_codes: dict[str, int] | None = None,
        uptime: Any = None,
        own_signal: bool = False,
    ) -> None:
        self.registry = registry
        self.address = address
        self.signal = signal
        self.agent_class = agent_class
        self.op_codes = {"ioc": OpCode.RUNNING} if op_codes is None else op_codes
        self.session = 0
        self.last_value: Any = None
        self.beats = 0
        self.errors: list[BaseException] = []
        self.uptime = uptime
        self._uptime: tuple[float, float] | None = None  # (IOC uptime, our clock) last seen
        self._own_signal = own_signal
        self._token: int | None = None
        self._uptime_token: int | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_pv(
        cls, registry: Registry, address: str, pv: str, *, timeout: float = 5.0, **kwargs: Any
    ) -> HeartbeatSource:
        """A source on the counter PV ``pv`` (a signal of its own, connected here)."""
        signal = EpicsSignalRO(pv, name=pv.replace(":", "_"))
        signal.wait_for_connection(timeout=timeout)
        return cls(registry, address, signal, own_signal=True, **kwargs)

    @classmethod
    def from_device(
        cls, registry: Registry, device: Any, address: str | None = None, **kwargs: Any
    ) -> HeartbeatSource:
        """A source on ``device.heartbeat`` (and ``device.uptime`` if it has one)."""
        kwargs.setdefault("uptime", getattr(device, "uptime", None))
        return cls(registry, address or f"ioc.{device.name}", device.heartbeat, **kwargs)

    def __repr__(self) -> str:
        return f"<HeartbeatSource {self.address} <- {getattr(self.signal, 'name', self.signal)}>"

    @property
    def session_id(self) -> str:
        return f"{self.address}#{self.session}"

    def start(self) -> HeartbeatSource:
        """Subscribe to the counter (idempotent)."""
        if self._token is None:
            if self.uptime is not None:
                self._uptime_token = self.uptime.subscribe(self._on_uptime, run=True)
            self._token = self.signal.subscribe(self._on_value, event_type="value", run=True)
        return self

    def stop(self) -> None:
        """Unsubscribe (and destroy a signal made by :meth:`from_pv`)."""
        token, self._token = self._token, None
        if token is not None:
            self.signal.unsubscribe(token)
        token, self._uptime_token = self._uptime_token, None
        if token is not None:
            self.uptime.unsubscribe(token)
        if self._own_signal:
            self.signal.destroy()

    def __enter__(self) -> HeartbeatSource:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _on_value(self, value: Any = None, **kwargs: Any) -> None:
        try:
            with self._lock:
                if value is None or value == self.last_value:
                    return  # no news: a reconnect to a frozen counter is not a beat
                if self.last_value is not None and value < self.last_value:
                    self.session += 1  # the counter started again: the IOC restarted
                self.last_value = value
                self.beats += 1
            self.registry.beat(self.address, self.op_codes, self.agent_class, self.session_id)
        except Exception as exc:  # never raise into ophyd's dispatcher
            self.errors.append(exc)

    def _on_uptime(self, value: Any = None, **kwargs: Any) -> None:
        if value is None:
            return
        now = time.monotonic()
        with self._lock:
            if self._uptime is not None:
                last, then = self._uptime
                if value + RESTART_SLACK < last + (now - then):  # younger than it should be
                    self.session += 1
            self._uptime = (float(value), now)


def alive_signal(registry: Registry, address: str, name: str | None = None) -> Signal:
    """An ophyd ``Signal``: True while ``address`` is alive in ``registry``, False once expired
    (or never seen). Usable with bluesky's ``SuspendBoolLow``."""
    signal = Signal(name=name or f"{address.replace('.', '_')}_alive", value=False)

    def update(addr: Any, old: Any, new: Any) -> None:
        alive = not registry.expired(address)
        if signal.get() != alive:
            signal.put(alive)

    registry.subscribe(update, checks=True)  # every change and every check
    update(None, None, None)
    return signal
