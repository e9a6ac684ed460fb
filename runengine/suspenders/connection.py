"""SuspendOnDisconnect: plans suspend the moment a device they use loses its connection.

    RE.install_suspender(SuspendOnDisconnect([m1, det], sleep=0.5))
    RE.install_suspender(bl.disconnect_suspender())      # every device of a Beamline

Fed by the devices' own connection callbacks (ophyd's metadata subscriptions: ``connected``
goes False when Channel Access loses the circuit, True again once the PV is connected, its
access rights known and its first metadata read), so it trips as soon as the client knows,
not when a heartbeat expires. It resumes ``sleep`` s after every watched signal is connected
again. While tripped, ``nudge()`` (if given) is called every ``nudge_period`` s: the beamline
passes one that makes the Channel Access client search again at once, so that a restarted
IOC is found in well under a second instead of after the client's search back-off.

A message that fails because of the disconnect (ophyd's ``DisconnectedError``, a connection
timeout) is replayed after the suspension instead of being thrown into the plan: the engine
asks installed suspenders for a ``failure_grace(exc)`` and waits that long for the
suspension the failure predicts before it throws.

``give_up_after``: a signal still disconnected that many seconds after it was lost ends the
suspension with :class:`DeviceDisconnectedError`, thrown into the plan (the run fails, its
reason names the PVs and, given ``sources``, the IOCs serving them). ``None`` waits forever.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from bluesky.suspenders import SuspenderBase

from ..errors import RunEngineError

__all__ = ["DeviceDisconnectedError", "SuspendOnDisconnect", "connection_failures"]

log = logging.getLogger(__name__)


def connection_failures() -> tuple[type[BaseException], ...]:
    """The exception types a lost Channel Access connection raises in ophyd."""
    from ophyd.signal import ConnectionTimeoutError
    from ophyd.utils.errors import DisconnectedError

    found: list[type[BaseException]] = [DisconnectedError, ConnectionTimeoutError]
    try:
        from caproto import CaprotoTimeoutError

        found.append(CaprotoTimeoutError)
    except ImportError:  # pragma: no cover - caproto is a dependency of the devices
        pass
    return tuple(found)


class DeviceDisconnectedError(RunEngineError, ConnectionError):
    """Devices stayed disconnected beyond a suspender's ``give_up_after``; the message names
    their IOCs (when known) and PVs. ``pvs``: the PV names; ``sources``: the IOCs."""

    def __init__(self, message: str, pvs: Iterable[str] = (), sources: Iterable[str] = ()):
        super().__init__(message)
        self.pvs = list(pvs)
        self.sources = list(sources)


def _signals(devices: Iterable[Any]) -> list[Any]:
    """Every Channel Access signal (one with a ``pvname``) of these devices and signals."""
    found: dict[int, Any] = {}
    for device in devices:
        if hasattr(device, "walk_signals"):
            items = [item.item for item in device.walk_signals(include_lazy=False)]
        else:
            items = [device]
        for sig in items:
            if getattr(sig, "pvname", None):
                found.setdefault(id(sig), sig)
    return list(found.values())


class _Connections:
    """The 'signal' the SuspenderBase subscribes to: the names of the disconnected signals.

    ``_lock`` guards the state and is never held while calling out (a callback reads
    ``down`` for its justification); ``_delivering`` orders deliveries, each of which sends
    the newest state, so the last one a subscriber sees is always the current one.
    """

    def __init__(self, suspender: SuspendOnDisconnect) -> None:
        self.suspender = suspender
        self.name = "connections"
        self._lock = threading.Lock()
        self._delivering = threading.Lock()
        self._down: dict[str, float] = {}  # signal name -> when it was seen disconnected
        self._callbacks: list[Callable] = []
        self._nudger: threading.Thread | None = None
        self._stop = threading.Event()

    def __repr__(self) -> str:
        return f"<connections of {len(self.suspender.signals)} signals>"

    @property
    def down(self) -> dict[str, float]:
        with self._lock:
            return dict(self._down)

    def subscribe(self, cb: Callable, event_type: Any = None, run: bool = True) -> None:
        with self._lock:
            self._callbacks.append(cb)
            self._stop.clear()
        for sig in self.suspender.signals:
            sig.subscribe(self._changed, event_type=sig.SUB_META, run=False)
            if not sig.connected:
                self._changed(obj=sig, connected=False)
        if run:
            with self._delivering:
                cb(value=tuple(self.down))

    def clear_sub(self, cb: Callable, event_type: Any = None) -> None:
        for sig in self.suspender.signals:
            sig.clear_sub(self._changed, event_type=sig.SUB_META)
        with self._lock:
            if cb in self._callbacks:
                self._callbacks.remove(cb)
            self._down.clear()
        self._stop.set()

    def _changed(self, obj: Any = None, connected: bool | None = None, **_: Any) -> None:
        if obj is None or connected is None:
            return
        with self._lock:
            if connected:
                if self._down.pop(obj.name, None) is None:
                    return
                if not self._down:
                    log.info("every signal is connected again")
            elif obj.name in self._down:
                return
            else:
                # One warning per outage (an IOC's dozens of signals drop together); the
                # suspension's justification lists them.
                level = logging.DEBUG if self._down else logging.WARNING
                self._down[obj.name] = time.time()
                log.log(level, "%s (%s) disconnected", obj.name, getattr(obj, "pvname", ""))
                self._start_nudging()
        self._deliver()

    def _deliver(self) -> None:
        with self._delivering:
            with self._lock:
                down, callbacks = tuple(self._down), list(self._callbacks)
            for cb in callbacks:
                cb(value=down)

    def _start_nudging(self) -> None:
        """Start the nudge thread unless it runs (called with ``_lock`` held)."""
        nudge = self.suspender.nudge
        if nudge is None or (self._nudger is not None and self._nudger.is_alive()):
            return

        def loop() -> None:
            while not self._stop.wait(self.suspender.nudge_period):
                with self._lock:
                    if not self._down:
                        return
                try:
                    nudge()
                except Exception as exc:  # a nudge is a help, never a reason to stop
                    log.warning("reconnect nudge failed: %r", exc)

        self._nudger = threading.Thread(target=loop, name="SuspendOnDisconnect nudge", daemon=True)
        self._nudger.start()


class _Release(asyncio.Event):
    """The event a suspension waits on; its ``wait`` raises :class:`DeviceDisconnectedError`
    once the suspender's ``give_up_after`` has passed with a signal still disconnected."""

    def __init__(self, suspender: SuspendOnDisconnect) -> None:
        super().__init__()
        self._suspender = suspender

    async def wait(self) -> Literal[True]:
        while True:
            left = self._suspender._give_up_in()
            if left is None:
                return await super().wait()
            try:
                return await asyncio.wait_for(super().wait(), max(left, 0.0))
            except TimeoutError:
                if self.is_set():
                    return True
                error = self._suspender.gave_up()
                if error is not None:
                    raise error from None


class SuspendOnDisconnect(SuspenderBase):
    """A suspender: suspend while any Channel Access signal of ``devices`` is disconnected;
    resume ``sleep`` s after all are connected (and readable) again.

    ``grace``: how long the engine waits, after a message failed with a connection error
    (:func:`connection_failures`), for this suspender to trip before the error is thrown
    into the plan. ``nudge``: called every ``nudge_period`` s while tripped (see the module).
    ``give_up_after``: seconds a signal may stay disconnected before the suspension fails the
    plan with :class:`DeviceDisconnectedError` (``None``: never). ``sources``: PV prefix ->
    the name of what serves it (an IOC), for that error's message.
    """

    #: It makes its own release events (ones that can give up) and hands them out atomically:
    #: runengine.compat.harden leaves it as it is.
    hardened = True

    def __init__(
        self,
        devices: Iterable[Any],
        *,
        sleep: float = 0.5,
        grace: float = 2.0,
        nudge: Callable[[], None] | None = None,
        nudge_period: float = 0.2,
        give_up_after: float | None = None,
        sources: Mapping[str, str] | None = None,
        pre_plan: Any = None,
        post_plan: Any = None,
        tripped_message: str = "",
    ) -> None:
        self.signals = _signals(devices)
        if not self.signals:
            raise ValueError("SuspendOnDisconnect needs devices with Channel Access signals")
        self.grace = grace
        self.nudge = nudge
        self.nudge_period = nudge_period
        self.give_up_after = give_up_after
        self.sources = dict(sources or {})
        self._pvnames = {sig.name: sig.pvname for sig in self.signals}
        self._failures = connection_failures()
        super().__init__(
            _Connections(self),
            sleep=sleep,
            pre_plan=pre_plan,
            post_plan=post_plan,
            tripped_message=tripped_message,
        )

    @property
    def disconnected(self) -> list[str]:
        """The names of the watched signals disconnected now."""
        return list(self._sig.down)

    def failure_grace(self, exc: BaseException) -> float:
        """Seconds the engine should wait for a suspension before throwing ``exc``."""
        seen: set[int] = set()
        while exc is not None and id(exc) not in seen:
            seen.add(id(exc))
            if isinstance(exc, self._failures):
                return self.grace if self.RE is not None else 0.0
            exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
        return 0.0

    def gave_up(self) -> DeviceDisconnectedError | None:
        """The error that ends the suspension if ``give_up_after`` has passed since the oldest
        disconnect still standing; ``None`` while within the bound (or unbounded)."""
        down = self._sig.down
        if self.give_up_after is None or not down:
            return None
        lost = time.time() - min(down.values())
        if lost < self.give_up_after:
            return None
        pvs = sorted(self._pvnames.get(name, name) for name in down)
        by_source: dict[str, list[str]] = {}
        for pv in pvs:
            by_source.setdefault(self._source_of(pv), []).append(pv)
        parts = [
            (f"the {source!r} IOC ({', '.join(names)})" if source else ", ".join(names))
            for source, names in by_source.items()
        ]
        sources = [source for source in by_source if source]
        return DeviceDisconnectedError(
            f"gave up after {lost:.1f} s (give_up_after={self.give_up_after:g} s) waiting "
            f"for {'; '.join(parts)} to reconnect",
            pvs,
            sources,
        )

    def _source_of(self, pvname: str) -> str:
        best = ""
        for prefix, _source in self.sources.items():
            if pvname.startswith(prefix) and len(prefix) > len(best):
                best = prefix
        return self.sources.get(best, "") if best else ""

    def _give_up_in(self) -> float | None:
        """Seconds until the bound passes (``None``: unbounded); 0.5 to look again while
        nothing is down (the release follows in ``sleep`` s)."""
        if self.give_up_after is None:
            return None
        down = self._sig.down
        if not down:
            return 0.5
        return min(down.values()) + self.give_up_after - time.time()

    # SuspenderBase's private hook (the shape runengine.compat checks): our release events.
    def _SuspenderBase__make_event(self) -> asyncio.Event | None:
        if self._ev is None and self.RE is not None:
            self._ev = _Release(self)
        return self._ev

    def get_futures(self) -> tuple[list, str]:
        """The release to wait on while tripped, and why (atomically: see runengine.compat)."""
        with self._lock:
            event = self._SuspenderBase__make_event() if self._tripped else None
            if event is None:
                return [], ""
            return [event.wait], self._get_justification()

    def _should_suspend(self, value: tuple) -> bool:
        return bool(value)

    def _should_resume(self, value: tuple) -> bool:
        return not value

    def _get_justification(self) -> str:
        if not self.tripped:
            return ""
        down = self._sig.down
        names = ", ".join(sorted(down)[:5]) + (
            f" and {len(down) - 5} more" if len(down) > 5 else ""
        )
        just = f"Disconnected: {names}" if down else "A device was disconnected"
        return ": ".join(s for s in (just, self._tripped_message) if s)

    def __repr__(self) -> str:
        return f"SuspendOnDisconnect({len(self.signals)} signals, sleep={self._sleep})"
