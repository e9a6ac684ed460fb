"""The simulated beamline: its IOCs started on loopback and its ophyd devices connected.

    from runengine.devices.beamline import Beamline
    with Beamline() as bl:                     # IOCs up and every device connected
        RE(scan([bl.det], bl.m1, -2, 2, 21))
    # IOCs stopped

Interactively, ``bl = Beamline().start()`` and ``bl.stop()`` (IOCs also stop when the
session ends). Devices: ``m1``, ``m2`` (motors), ``det`` (point detector peaked in m1),
``cam`` (area detector), ``temp`` (temperature controller), ``beam``, ``shutter``; and
``health[<ioc>]``, each IOC's heartbeat and uptime. ``bl.iocs[<ioc>]`` is the process, for
fault injection (``kill``, ``restart``); ``runengine.devices.faults`` has the rest.
"""

from __future__ import annotations

from collections.abc import Iterable

from ophyd import Device

from .hardware import (
    AreaDetector,
    BeamMonitor,
    IOCHealth,
    Motor,
    PointDetector,
    Shutter,
    TemperatureController,
)
from .launcher import IOCProcess, start_all, unique_prefix, use_loopback_client

__all__ = ["IOC_MODULES", "Beamline", "DeviceConnectionError", "connect_all"]

IOC_MODULES = {
    "motors": "runengine.devices.ioc.motors",
    "pointdet": "runengine.devices.ioc.pointdet",
    "areadet": "runengine.devices.ioc.areadet",
    "temperature": "runengine.devices.ioc.temperature",
    "beam": "runengine.devices.ioc.beam",
}


class DeviceConnectionError(ConnectionError):
    """Devices did not connect in time; the message names every PV still missing."""


def connect_all(devices: Iterable[Device], timeout: float = 10.0) -> None:
    """Wait until every device is connected, all at once (not one timeout after another).

    Raises :class:`DeviceConnectionError` naming each unconnected device and PV.
    """
    devices = list(devices)
    missing = []
    for device in devices:  # the connections progress in parallel; the first wait covers most
        try:
            device.wait_for_connection(timeout=timeout)
        except TimeoutError:
            pvs = [
                getattr(sig, "pvname", None) or sig.name
                for _, sig in _signals(device)
                if not sig.connected
            ]
            missing.append(f"{device.name}: {', '.join(pvs) or 'not connected'}")
            timeout = 0.1  # the deadline has passed: check the rest without waiting again
    if missing:
        raise DeviceConnectionError(
            f"no answer over Channel Access within the timeout from: {'; '.join(missing)}"
        )


def _signals(device: Device):
    if not hasattr(device, "walk_signals"):
        return [(device.name, device)]
    return [(item.dotted_name, item.item) for item in device.walk_signals(include_lazy=False)]


class Beamline:
    """IOCs (``iocs``: names of :data:`IOC_MODULES`) on free loopback ports, and their devices.

    PV prefixes are unique to this launch, so two beamlines (two test processes, say) never
    talk to each other's IOCs. ``seed`` makes the simulated noise reproducible.
    """

    def __init__(
        self,
        iocs: Iterable[str] = tuple(IOC_MODULES),
        *,
        seed: int | None = None,
        start_timeout: float = 20.0,
        connect_timeout: float = 10.0,
    ) -> None:
        names = list(iocs)
        unknown = [n for n in names if n not in IOC_MODULES]
        if unknown:
            raise ValueError(f"unknown IOC(s) {unknown}; choose from {sorted(IOC_MODULES)}")
        if "pointdet" in names and "motors" not in names:
            raise ValueError("the 'pointdet' IOC reads a motor: add 'motors' to iocs")
        self.seed = seed
        self.start_timeout = start_timeout
        self.connect_timeout = connect_timeout
        self.iocs: dict[str, IOCProcess] = {}
        for name in names:
            self.iocs[name] = IOCProcess(IOC_MODULES[name], unique_prefix(name[:4]))
        self.devices: dict[str, Device] = {}
        self.health: dict[str, IOCHealth] = {}

    def __repr__(self) -> str:
        iocs = ", ".join(f"{n}@{ioc.port}" for n, ioc in self.iocs.items())
        return f"<Beamline {'running' if self.running else 'stopped'}: {iocs}>"

    @property
    def running(self) -> bool:
        return bool(self.iocs) and all(ioc.alive for ioc in self.iocs.values())

    def start(self) -> Beamline:
        """Start every IOC at once, wait until each answers, then connect every device."""
        self._configure_iocs()
        start_all(list(self.iocs.values()), timeout=self.start_timeout)
        try:
            use_loopback_client(*(ioc.port for ioc in self.iocs.values()))
            self._make_devices()
            connect_all([*self.devices.values(), *self.health.values()], self.connect_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every IOC (SIGINT, then SIGKILL) and disconnect the devices."""
        for device in [*self.devices.values(), *self.health.values()]:
            device.destroy()
        self.devices.clear()
        self.health.clear()
        for ioc in self.iocs.values():
            ioc.stop()

    def __enter__(self) -> Beamline:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __getattr__(self, name: str) -> Device:
        devices = self.__dict__.get("devices", {})
        if name in devices:
            return devices[name]
        raise AttributeError(
            f"the beamline has no device {name!r}"
            + (f" (devices: {sorted(devices)})" if devices else " (not started)")
        )

    def _configure_iocs(self) -> None:
        seed = [] if self.seed is None else ["--seed", str(self.seed)]
        for name, ioc in self.iocs.items():
            if name in ("pointdet", "areadet", "beam"):
                ioc.args = list(seed)
        if "pointdet" in self.iocs:
            motors = self.iocs["motors"]
            det = self.iocs["pointdet"]
            det.args += ["--motor-pv", f"{motors.prefix}mtr1.RBV"]
            det.client_ports = [motors.port]

    def _make_devices(self) -> None:
        p = {name: ioc.prefix for name, ioc in self.iocs.items()}
        made: dict[str, Device] = {}
        if "motors" in p:
            made["m1"] = Motor(f"{p['motors']}mtr1", name="m1")
            made["m2"] = Motor(f"{p['motors']}mtr2", name="m2")
        if "pointdet" in p:
            made["det"] = PointDetector(p["pointdet"], name="det")
        if "areadet" in p:
            made["cam"] = AreaDetector(p["areadet"], name="cam")
        if "temperature" in p:
            made["temp"] = TemperatureController(p["temperature"], name="temp")
        if "beam" in p:
            made["beam"] = BeamMonitor(p["beam"], name="beam")
            made["shutter"] = Shutter(p["beam"], name="shutter")
        self.devices.update(made)
        for name, prefix in p.items():
            self.health[name] = IOCHealth(prefix, name=f"{name}_ioc")
