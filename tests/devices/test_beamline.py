"""The Beamline: IOCs up and devices connected on entry, everything gone on exit."""

from __future__ import annotations

import time

import pytest
from bluesky import plans as bp

from runengine import RunEngine
from runengine.devices.beamline import Beamline, DeviceConnectionError, connect_all
from runengine.devices.hardware import PointDetector
from runengine.devices.launcher import IOCProcess, IOCStartError, start_all, unique_prefix
from tests.devices.procs import ioc_children, is_running, port_is_free

pytestmark = pytest.mark.integration


def test_every_device_of_the_session_beamline_is_connected(beamline):
    assert beamline.running
    assert set(beamline.devices) == {"m1", "m2", "det", "cam", "temp", "beam", "shutter"}
    assert all(device.connected for device in beamline.devices.values())
    assert set(beamline.health) == set(beamline.iocs)
    prefixes = [ioc.prefix for ioc in beamline.iocs.values()]
    ports = [ioc.port for ioc in beamline.iocs.values()]
    assert len(set(prefixes)) == len(prefixes) and len(set(ports)) == len(ports)


def test_a_scan_over_the_session_beamline_on_our_engine(beamline):
    docs = []
    RE = RunEngine({}, context_managers=[])
    RE(bp.scan([beamline.det], beamline.m1, -1, 1, 5), lambda n, d: docs.append((n, d)))
    events = [d for n, d in docs if n == "event"]
    assert [e["data"]["m1"] for e in events] == pytest.approx([-1, -0.5, 0, 0.5, 1], abs=1e-3)
    assert docs[-1][1]["exit_status"] == "success"


def test_leaving_the_context_stops_every_ioc_and_frees_its_port():
    with Beamline(["temperature"]) as bl:
        pids = [ioc.pid for ioc in bl.iocs.values()]
        ports = [ioc.port for ioc in bl.iocs.values()]
        assert bl.temp.readback.get() == pytest.approx(295, abs=1)
        assert all(pid in ioc_children() for pid in pids)
    assert not bl.running and not bl.devices
    assert not any(is_running(pid) for pid in pids)
    assert all(port_is_free(port) for port in ports)
    with pytest.raises(AttributeError, match=r"no device 'temp'.*not started"):
        bl.temp  # noqa: B018


def test_unknown_or_incomplete_ioc_lists_are_refused_by_name():
    with pytest.raises(ValueError, match=r"unknown IOC\(s\) \['laser'\]"):
        Beamline(["motors", "laser"])
    with pytest.raises(ValueError, match="'pointdet' IOC reads a motor"):
        Beamline(["pointdet"])


def test_a_prefix_nobody_serves_fails_naming_the_pvs_within_the_timeout(beamline):
    """Bad input: the beamline's IOCs are searched, none answers for this prefix."""
    ghost = PointDetector("nobody:here:", name="ghost")
    started = time.monotonic()
    with pytest.raises(DeviceConnectionError, match=r"ghost: .*nobody:here:Value_RBV"):
        connect_all([ghost], timeout=1.0)
    assert time.monotonic() - started < 10  # bounded: one timeout, not one per signal
    ghost.destroy()


def test_one_ioc_failing_to_start_stops_the_others():
    good = IOCProcess("runengine.devices.ioc.temperature", unique_prefix("ok"))
    bad = IOCProcess("runengine.devices.ioc.missing", unique_prefix("bad"))
    with pytest.raises(IOCStartError, match="missing"):
        start_all([good, bad])
    assert not good.alive and not bad.alive
