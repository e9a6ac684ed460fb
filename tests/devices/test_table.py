"""The device table: a new simulated device is its IOC module plus one row of ``IOCS``.

The integration tests add a row for ``tests/devices/lamp_ioc.py`` (and its ophyd class, here)
to a copy of the table and touch nothing else: the Beamline starts it on loopback with its
arguments and makes its device, the shell labels it, and the faults find its fault PVs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from ophyd import Component as Cpt
from ophyd import Device, EpicsSignal, EpicsSignalRO

from runengine.devices import faults, table
from runengine.devices.beamline import IOC_MODULES, Beamline
from runengine.devices.table import DeviceSpec, FaultPV, IOCSpec, ReadsPV
from tests.timing import poll

ROOT = Path(__file__).resolve().parents[2]


class Lamp(Device):
    """The ophyd side of ``tests.devices.lamp_ioc``."""

    on = Cpt(EpicsSignal, "ON", kind="config")
    lit = Cpt(EpicsSignalRO, "LIT", kind="hinted")
    watts = Cpt(EpicsSignalRO, "WATTS", kind="config")
    seed = Cpt(EpicsSignalRO, "SEED", kind="config")


LAMP = IOCSpec(
    "lamp",
    "tests.devices.lamp_ioc",
    devices=(DeviceSpec("lamp", Lamp, labels=("lights", "detectors")),),
    seeded=True,
    args=("--watts", "60"),
    faults=(FaultPV("FAULT:BLOWN", "lamp blown"),),
)


@pytest.fixture
def with_lamp(monkeypatch):
    """The table plus the lamp's row; its IOC module importable by the IOC subprocess."""
    monkeypatch.setattr(table, "IOCS", (*table.IOCS, LAMP))
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), *([path] if path else [])]))


def test_the_table_holds_the_beamline_as_it_was():
    assert dict(IOC_MODULES) == {
        "motors": "runengine.devices.ioc.motors",
        "pointdet": "runengine.devices.ioc.pointdet",
        "areadet": "runengine.devices.ioc.areadet",
        "temperature": "runengine.devices.ioc.temperature",
        "beam": "runengine.devices.ioc.beam",
    }
    labels = {d.name: d.labels for spec in table.IOCS for d in spec.devices}
    assert labels == {
        "m1": ("motors",),
        "m2": ("motors",),
        "det": ("detectors",),
        "cam": ("detectors",),
        "temp": ("motors",),
        "beam": ("monitors",),
        "shutter": ("motors",),
    }


def test_the_iocs_command_lines_come_from_the_rows():
    bl = Beamline(["pointdet", "motors", "temperature"], seed=3)
    try:
        bl._configure_iocs()
        motors, det, temp = bl.iocs["motors"], bl.iocs["pointdet"], bl.iocs["temperature"]
        assert det.args == ["--seed", "3", "--motor-pv", f"{motors.prefix}mtr1.RBV"]
        assert det.client_ports == [motors.port]
        assert motors.args == temp.args == [] and motors.client_ports == []
    finally:
        bl.stop()


def test_a_row_is_seen_at_once_and_its_dependencies_are_checked(with_lamp, monkeypatch):
    assert IOC_MODULES["lamp"] == "tests.devices.lamp_ioc" and "lamp" in IOC_MODULES
    with pytest.raises(ValueError, match=r"unknown IOC\(s\) \['laser'\]; .*'lamp'"):
        Beamline(["lamp", "laser"])
    with pytest.raises(ValueError, match=r"unknown IOC 'laser'; choose from .*lamp"):
        faults.ioc_faults("laser", "x:")
    reads = (ReadsPV("lamp", "--lamp-pv", "LIT", "a lamp"),)
    needy = IOCSpec("spot", "tests.devices.lamp_ioc", reads=reads)
    monkeypatch.setattr(table, "IOCS", (*table.IOCS, needy))
    with pytest.raises(ValueError, match=r"^the 'spot' IOC reads a lamp: add 'lamp' to iocs$"):
        Beamline(["spot"])


@pytest.mark.integration
def test_one_row_starts_the_ioc_makes_the_device_and_finds_its_faults(with_lamp):
    with Beamline(["temperature", "lamp"], seed=7) as bl:
        lamp = bl.lamp
        assert isinstance(lamp, Lamp) and lamp.name == "lamp" and lamp.connected
        assert lamp.prefix == bl.iocs["lamp"].prefix
        assert list(bl.devices) == ["temp", "lamp"]  # table order
        assert (lamp.watts.get(), lamp.seed.get()) == (60, 7)  # args and --seed from the row
        assert bl.health["lamp"].heartbeat.connected
        found = faults.ioc_faults("lamp", lamp.prefix)
        assert list(found) == ["FAULT:FREEZE_HB", "FAULT:FAIL_PUTS", "FAULT:BLOWN"]
        lamp.on.put(1, wait=True)
        assert poll(lambda: lamp.lit.get(use_monitor=False) == 1)
        with found["FAULT:BLOWN"].inject() as blown:
            assert blown.active and poll(lambda: lamp.lit.get(use_monitor=False) == 0)
        assert not blown.active and poll(lambda: lamp.lit.get(use_monitor=False) == 1)
        with found["FAULT:FREEZE_HB"].inject():
            assert faults.ioc_faults("lamp", lamp.prefix)["FAULT:FREEZE_HB"].active


@pytest.mark.integration
def test_the_shell_labels_the_new_device_from_its_row(with_lamp, tmp_path):
    from runengine.cli.session import Session

    with Session(store=tmp_path / "runs", table=False) as session:
        devices = session.devices
        assert devices["lamp"]._ophyd_labels_ == {"lights", "detectors"}
        assert "lamp" in session.banner()
        assert {name: d._ophyd_labels_ for name, d in devices.items() if name != "lamp"} == {
            "m1": {"motors"},
            "m2": {"motors"},
            "det": {"detectors"},
            "cam": {"detectors"},
            "temp": {"motors"},
            "beam": {"monitors"},
            "shutter": {"motors"},
        }


def test_runengine_ioc_knows_the_new_row(with_lamp):
    from runengine.cli.runs import run_ioc_foreground

    with pytest.raises(ValueError, match=r"unknown IOC 'laser'; choose from .*lamp, motors"):
        run_ioc_foreground("laser", None, None)
