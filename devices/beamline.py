"""The simulated beamline: its IOCs started on loopback and its ophyd devices connected.

    from runengine.devices.beamline import Beamline
    with Beamline() as bl:                     # IOCs up and every device connected
        RE(scan([bl.det], bl.m1, -2, 2, 21))
    # IOCs stopped

Interactively, ``bl = Beamline().start()`` and ``bl.stop()`` (IOCs also stop when the
session ends). Devices: ``m1``, ``m2`` (motors), ``det`` (point detector peaked in m1),
``cam`` (area detector), ``temp`` (temperature controller), ``beam``, ``shutter``; and
``health[<ioc>]``, each IOC's heartbeat and uptime. ``bl.iocs[<ioc>]`` is the process, for
fault injection (``kill``, ``restart``); ``runengine.devices.faults`` has the rest. Which
IOCs there are, how each is started and which devices it gives: :mod:`runengine.devices.table`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ophyd import Device

from runengine.suspenders.connection import DeviceDisconnectedError, SuspendOnDisconnect

from .ca_search import search_now
from .errors import DeviceError
from .hardware import IOCHealth
from .launcher import IOCProcess, start_all, unique_prefix, use_loopback_client
from .table import IOC_MODULES, ioc_specs

__all__ = [
    "IOC_MODULES",
    "Beamline",
    "DeviceConnectionError",
    "DeviceDisconnectedError",
    "SuspendOnDisconnect",
    "connect_all",
]


class DeviceConnectionError(DeviceError, ConnectionError):
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
    """IOCs (``iocs``: names in :data:`.table.IOCS`, default all) on free loopback ports, and
    their devices, as the table says.

    PV prefixes are unique to this launch, so two beamlines (two test processes, say) never
    talk to each other's IOCs. ``seed`` makes the simulated noise reproducible.
    ``image_dir``: detectors that can write files (a ``write_path``) write them in its
    ``<device name>/`` folder, and their events refer to them (default: images inline).
    ``specs``: the table's rows of these IOCs.
    """

    def __init__(
        self,
        iocs: Iterable[str] | None = None,
        *,
        seed: int | None = None,
        start_timeout: float = 20.0,
        connect_timeout: float = 10.0,
        image_dir: str | os.PathLike | None = None,
    ) -> None:
        specs = ioc_specs()
        names = list(specs if iocs is None else iocs)
        unknown = [n for n in names if n not in specs]
        if unknown:
            raise ValueError(f"unknown IOC(s) {unknown}; choose from {sorted(specs)}")
        for name in names:
            for read in specs[name].reads:
                if read.ioc not in names:
                    raise ValueError(
                        f"the {name!r} IOC reads {read.what}: add {read.ioc!r} to iocs"
                    )
        self.specs = {name: spec for name, spec in specs.items() if name in names}
        self.seed = seed
        self.image_dir = None if image_dir is None else Path(image_dir).expanduser().resolve()
        self.start_timeout = start_timeout
        self.connect_timeout = connect_timeout
        self.iocs: dict[str, IOCProcess] = {}
        for name in names:
            self.iocs[name] = IOCProcess(specs[name].module, unique_prefix(name[:4]))
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

    def disconnect_suspender(
        self, *, sleep: float = 0.5, grace: float = 2.0, give_up_after: float | None = 60.0
    ) -> SuspendOnDisconnect:
        """A :class:`SuspendOnDisconnect` over every device and IOC heartbeat of the beamline,
        which also makes the client search again while tripped (a restarted IOC is found
        within a few tenths of a second): ``RE.install_suspender(bl.disconnect_suspender())``.
        An IOC not back within ``give_up_after`` s fails the plan with a
        :class:`DeviceDisconnectedError` naming it and its PVs (``None``: wait forever).
        ``runengine shell`` and ``runengine run`` install one."""
        if not self.devices:
            raise RuntimeError("the beamline is not started: no devices to watch")
        return SuspendOnDisconnect(
            [*self.devices.values(), *self.health.values()],
            sleep=sleep,
            grace=grace,
            nudge=search_now,
            give_up_after=give_up_after,
            sources={ioc.prefix: name for name, ioc in self.iocs.items()},
        )

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
            spec = self.specs[name]
            if not (spec.seeded or spec.args or spec.reads):
                continue  # nothing of ours on its command line: leave it as it is
            ioc.args = [*(seed if spec.seeded else []), *spec.args]
            for read in spec.reads:
                ioc.args += [read.option, f"{self.iocs[read.ioc].prefix}{read.pv}"]
            if spec.reads:
                ioc.client_ports = list(dict.fromkeys(self.iocs[r.ioc].port for r in spec.reads))

    def _make_devices(self) -> None:
        made: dict[str, Device] = {}
        for name, spec in self.specs.items():  # in table order, whatever the order of iocs
            prefix = self.iocs[name].prefix
            made.update({device.name: device.make(prefix) for device in spec.devices})
        if self.image_dir is not None:
            for device in made.values():
                if hasattr(device, "write_path"):
                    device.write_path = self.image_dir / device.name
        self.devices.update(made)
        for name, ioc in self.iocs.items():
            self.health[name] = IOCHealth(ioc.prefix, name=f"{name}_ioc")
