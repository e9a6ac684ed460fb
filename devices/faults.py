"""Fault injection on the simulated IOCs, by device or IOC prefix.

Each function puts to a fault PV of :mod:`runengine.devices.ioc` and returns a :class:`Fault`,
which undoes it with ``clear()`` or at the end of a ``with`` block::

    with faults.drop_beam(beam):          # CURRENT goes to 0 within 0.1 s
        ...                               # a SuspendFloor on beam trips
    faults.stall_motor(m1)                # moves start and never finish ...
    faults.unstall_motor(m1)              # ... until cleared
    faults.freeze_heartbeat("sim:")       # HEARTBEAT stops counting
    faults.fail_puts(det)                 # puts to Acquire/VAL/SP/SHUTTER are rejected
    faults.ioc_faults("beam", prefix)     # by PV suffix: every fault PV the table gives an IOC

Killing or restarting an IOC process is the launcher's (:mod:`runengine.devices.launcher`).
"""

from __future__ import annotations

from ophyd import Device, EpicsSignal

from .hardware import Motor, ioc_prefix
from .table import COMMON_FAULTS, ioc_specs

__all__ = [
    "Fault",
    "allow_puts",
    "drop_beam",
    "fail_puts",
    "freeze_heartbeat",
    "ioc_faults",
    "restore_beam",
    "stall",
    "stall_motor",
    "thaw_heartbeat",
    "unstall",
    "unstall_motor",
]

TIMEOUT = 2.0
_signals: dict[str, EpicsSignal] = {}


def _signal(pvname: str) -> EpicsSignal:
    signal = _signals.get(pvname)
    if signal is None:
        signal = EpicsSignal(pvname, name=pvname.replace(":", "_").replace(".", "_"))
        signal.wait_for_connection(timeout=TIMEOUT)
        _signals[pvname] = signal
    return signal


class Fault:
    """One fault PV: ``inject()`` sets it, ``clear()`` resets it; a context manager too."""

    def __init__(self, pvname: str, description: str) -> None:
        self.pvname = pvname
        self.description = description

    def __repr__(self) -> str:
        return f"<Fault {self.description} ({self.pvname})>"

    def inject(self) -> Fault:
        _signal(self.pvname).put(1, wait=True, timeout=TIMEOUT)
        return self

    def clear(self) -> Fault:
        _signal(self.pvname).put(0, wait=True, timeout=TIMEOUT)
        return self

    @property
    def active(self) -> bool:
        """Whether the IOC has the fault set now."""
        return bool(_signal(self.pvname).get(use_monitor=False))

    def __enter__(self) -> Fault:
        return self

    def __exit__(self, *exc) -> None:
        self.clear()


def _heartbeat(target: Device | str) -> Fault:
    prefix = ioc_prefix(target)
    return Fault(f"{prefix}FAULT:FREEZE_HB", f"heartbeat of {prefix} frozen")


def _puts(target: Device | str) -> Fault:
    prefix = ioc_prefix(target)
    return Fault(f"{prefix}FAULT:FAIL_PUTS", f"puts to {prefix} fail")


def _beam(target: Device | str) -> Fault:
    prefix = ioc_prefix(target)
    return Fault(f"{prefix}FAULT:DROP_BEAM", f"beam of {prefix} lost")


def _stall(device: Device) -> Fault:
    if isinstance(device, Motor):
        return Fault(f"{device.prefix}:FAULT:STALL", f"{device.name} stalled")
    return Fault(f"{ioc_prefix(device)}FAULT:STALL", f"{device.name} stalled")


def ioc_faults(ioc: str, prefix: str) -> dict[str, Fault]:
    """The fault PVs of the IOC named ``ioc`` in :data:`.table.IOCS`, served at ``prefix``.

    Keyed by PV suffix (``"FAULT:DROP_BEAM"``): the common ones first, then the row's own.
    Nothing is injected.
    """
    specs = ioc_specs()
    if ioc not in specs:
        raise ValueError(f"unknown IOC {ioc!r}; choose from {', '.join(sorted(specs))}")
    return {
        fault.suffix: Fault(f"{prefix}{fault.suffix}", f"{fault.what} on {prefix}")
        for fault in (*COMMON_FAULTS, *specs[ioc].faults)
    }


def freeze_heartbeat(target: Device | str) -> Fault:
    """Stop the ``HEARTBEAT`` counter of the IOC serving ``target`` (a device or a prefix)."""
    return _heartbeat(target).inject()


def thaw_heartbeat(target: Device | str) -> Fault:
    """Let the heartbeat count again."""
    return _heartbeat(target).clear()


def fail_puts(target: Device | str) -> Fault:
    """Make the IOC reject puts to its action PVs (motor VAL, Acquire, SP, SHUTTER)."""
    return _puts(target).inject()


def allow_puts(target: Device | str) -> Fault:
    """Accept puts again."""
    return _puts(target).clear()


def drop_beam(beam: Device | str) -> Fault:
    """Dump the beam: the current falls to 0 at the IOC's next update (0.1 s)."""
    return _beam(beam).inject()


def restore_beam(beam: Device | str) -> Fault:
    """Refill the beam: the current ramps back to nominal."""
    return _beam(beam).clear()


def stall(device: Device) -> Fault:
    """Make moves of a motor or a temperature ramp start and never finish."""
    return _stall(device).inject()


def unstall(device: Device) -> Fault:
    """Let a stalled move or ramp finish."""
    return _stall(device).clear()


def stall_motor(motor: Motor) -> Fault:
    """Make the motor's moves start (DMOV=0) and never finish until cleared."""
    if not isinstance(motor, Motor):
        raise TypeError(f"{motor!r} is not a runengine.devices.hardware.Motor")
    return stall(motor)


def unstall_motor(motor: Motor) -> Fault:
    """Let the motor's stalled move finish."""
    return unstall(motor)
