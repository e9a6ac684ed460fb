"""The simulated beamline as one table: a row per IOC, and everything that reads it.

A row names the IOC, its module (run as ``python -m``), what its command line needs (a
``--seed``, fixed arguments, the PVs of other IOCs it reads), the ophyd devices made from
its prefix (with their names and the labels ``runengine shell`` gives them) and its own
fault PVs. :class:`~runengine.devices.beamline.Beamline`, ``runengine ioc``, the shell and
:func:`runengine.devices.faults.ioc_faults` read :data:`IOCS` when they run, so a new
simulated device is its IOC module plus one row here (see docs/guides/hardware.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from ophyd import Device

from .hardware import (
    AreaDetector,
    BeamMonitor,
    Motor,
    PointDetector,
    Shutter,
    TemperatureController,
)

__all__ = [
    "COMMON_FAULTS",
    "IOCS",
    "IOC_MODULES",
    "DeviceSpec",
    "FaultPV",
    "IOCSpec",
    "ReadsPV",
    "ioc_specs",
]


@dataclass(frozen=True)
class DeviceSpec:
    """One ophyd device: ``factory(<IOC prefix><suffix>, name=name)``, labelled in the shell."""

    name: str
    factory: Callable[..., Device]
    suffix: str = ""
    labels: tuple[str, ...] = ()

    def make(self, ioc_prefix: str) -> Device:
        """The device of the IOC served at ``ioc_prefix``."""
        return self.factory(f"{ioc_prefix}{self.suffix}", name=self.name)


@dataclass(frozen=True)
class ReadsPV:
    """The IOC reads ``<prefix of ioc><pv>`` over CA, given as ``option`` on its command line.

    ``what`` completes the refusal when ``ioc`` is not started too: "the 'x' IOC reads <what>".
    """

    ioc: str
    option: str
    pv: str
    what: str


@dataclass(frozen=True)
class FaultPV:
    """A fault PV, ``<IOC prefix><suffix>``: non-zero injects the fault, 0 clears it."""

    suffix: str
    what: str


COMMON_FAULTS = (  # served by every IOC (runengine.devices.ioc._common.SimIOC)
    FaultPV("FAULT:FREEZE_HB", "heartbeat frozen"),
    FaultPV("FAULT:FAIL_PUTS", "puts fail"),
)


@dataclass(frozen=True)
class IOCSpec:
    """One IOC of the beamline and the devices made from it (see the module's notes).

    ``seeded``: the IOC takes ``--seed`` (``Beamline(seed=...)``). ``args``: fixed extra
    arguments. ``reads``: PVs of other IOCs it reads, which must be started with it.
    ``faults``: its fault PVs beyond :data:`COMMON_FAULTS`.
    """

    name: str
    module: str
    devices: tuple[DeviceSpec, ...] = ()
    seeded: bool = False
    args: tuple[str, ...] = ()
    reads: tuple[ReadsPV, ...] = ()
    faults: tuple[FaultPV, ...] = ()


_IOC = "runengine.devices.ioc"

IOCS: tuple[IOCSpec, ...] = (
    IOCSpec(
        "motors",
        f"{_IOC}.motors",
        devices=(
            DeviceSpec("m1", Motor, "mtr1", labels=("motors",)),
            DeviceSpec("m2", Motor, "mtr2", labels=("motors",)),
        ),
        faults=(
            FaultPV("mtr1:FAULT:STALL", "m1 stalled"),
            FaultPV("mtr2:FAULT:STALL", "m2 stalled"),
        ),
    ),
    IOCSpec(
        "pointdet",
        f"{_IOC}.pointdet",
        devices=(DeviceSpec("det", PointDetector, labels=("detectors",)),),
        seeded=True,
        reads=(ReadsPV("motors", "--motor-pv", "mtr1.RBV", "a motor"),),
    ),
    IOCSpec(
        "areadet",
        f"{_IOC}.areadet",
        devices=(DeviceSpec("cam", AreaDetector, labels=("detectors",)),),
        seeded=True,
    ),
    IOCSpec(
        "temperature",
        f"{_IOC}.temperature",
        devices=(DeviceSpec("temp", TemperatureController, labels=("motors",)),),
        faults=(FaultPV("FAULT:STALL", "ramp stalled"),),
    ),
    IOCSpec(
        "beam",
        f"{_IOC}.beam",
        devices=(
            DeviceSpec("beam", BeamMonitor, labels=("monitors",)),
            DeviceSpec("shutter", Shutter, labels=("motors",)),
        ),
        seeded=True,
        faults=(FaultPV("FAULT:DROP_BEAM", "beam lost"),),
    ),
)
"""The rows, in the order their devices are made.

:meta hide-value:
"""


def ioc_specs() -> dict[str, IOCSpec]:
    """The rows of :data:`IOCS` (as it is now) by IOC name, in table order."""
    return {spec.name: spec for spec in IOCS}


class _Modules(Mapping[str, str]):
    """IOC name -> module, read from :data:`IOCS` at each lookup."""

    def __getitem__(self, name: str) -> str:
        return ioc_specs()[name].module

    def __iter__(self) -> Iterator[str]:
        return iter(ioc_specs())

    def __len__(self) -> int:
        return len(IOCS)

    def __repr__(self) -> str:
        return repr(dict(self))


IOC_MODULES: Mapping[str, str] = _Modules()
"""IOC name -> the module run for it, derived from :data:`IOCS`."""
