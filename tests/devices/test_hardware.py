"""Device classes and IOC logic without sockets: kinds, names, hints, and the simulations.

The IOCs' PV groups are driven in-process (their putters and loops awaited directly); the
same devices over real IOCs are in ``test_iocs.py``.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from caproto import CaprotoValueError
from ophyd.sim import make_fake_device

from runengine.devices import faults
from runengine.devices.hardware import (
    AreaDetector,
    BeamMonitor,
    IOCHealth,
    Motor,
    PointDetector,
    Shutter,
    TemperatureController,
    ioc_prefix,
)
from runengine.devices.ioc._common import InjectedFault
from runengine.devices.ioc.areadet import AreaDetIOC
from runengine.devices.ioc.beam import BeamIOC
from runengine.devices.ioc.motors import MotorsIOC
from runengine.devices.ioc.pointdet import PointDetIOC, gaussian
from runengine.devices.ioc.temperature import TemperatureIOC


def fake(cls, prefix, name):
    return make_fake_device(cls)(prefix, name=name)


# ---- device classes ------------------------------------------------------------------------
def test_point_detector_reads_its_value_under_its_own_name_and_the_peak_as_configuration():
    det = fake(PointDetector, "d:", "det")
    assert det.hints == {"fields": ["det"]}
    assert list(det.read()) == ["det_array_counter", "det"]
    assert list(det.read_configuration()) == [
        "det_acquire_time",
        "det_center",
        "det_width",
        "det_height",
        "det_noise",
    ]
    assert det.heartbeat.kind.name == "omitted" and det.acquire.kind.name == "omitted"
    assert (PointDetector.acquire.suffix, PointDetector.value.suffix) == ("Acquire", "Value_RBV")


def test_area_detector_hints_its_total_and_keeps_the_image_size_as_configuration():
    # class level only: make_fake_device keeps ImageSignal real, which would search the network
    kinds = {attr: getattr(AreaDetector, attr).kind.name for attr in AreaDetector.component_names}
    assert kinds["total"] == "hinted" and kinds["image"] == kinds["array_counter"] == "normal"
    assert {a for a, k in kinds.items() if k == "config"} == {"acquire_time", "size0", "size1"}
    assert kinds["acquire"] == kinds["heartbeat"] == kinds["uptime"] == "omitted"
    assert (AreaDetector.image.suffix, AreaDetector.image.cls.__name__) == (
        "ArrayData",
        "ImageSignal",
    )


def test_temperature_beam_and_shutter_are_read_under_their_own_names():
    temp = fake(TemperatureController, "t:", "temp")
    assert temp.hints == {"fields": ["temp"]}
    assert set(temp.read()) == {"temp", "temp_setpoint"}
    assert set(temp.read_configuration()) == {"temp_rate"}
    assert (TemperatureController.done.suffix, temp.done_value) == ("DONE", 1)
    beam = fake(BeamMonitor, "r:", "beam")
    assert beam.hints == {"fields": ["beam"]} and set(beam.read_configuration()) == {"beam_nominal"}
    shutter = fake(Shutter, "r:", "shutter")
    assert list(shutter.read()) == ["shutter"]


@pytest.mark.parametrize(
    ("value", "target"),
    [("Open", "Open"), ("open", "Open"), (1, "Open"), (True, "Open"), ("Close", "Close"),
     ("closed", "Close"), (0, "Close"), (False, "Close")],
)  # fmt: skip
def test_shutter_accepts_open_and_close_spelled_several_ways(value, target):
    shutter = fake(Shutter, "r:", "shutter")
    shutter.set(value).wait(1)
    assert shutter.setpoint.get() == target


@pytest.mark.parametrize("value", ["ajar", 2, None])
def test_shutter_refuses_anything_else_before_any_put(value):
    shutter = fake(Shutter, "r:", "shutter")
    before = shutter.setpoint.get()
    with pytest.raises(ValueError, match="neither 'Open' nor 'Close'"):
        shutter.set(value)
    assert shutter.setpoint.get() == before  # never written


def test_ioc_prefix_of_devices_and_strings():
    assert ioc_prefix("sim:") == "sim:"
    assert ioc_prefix(fake(PointDetector, "d7:", "det")) == "d7:"
    assert ioc_prefix(fake(TemperatureController, "t7:", "temp")) == "t7:"
    assert Motor.ioc_prefix.fget(type("M", (), {"prefix": "sim3n1:mtr12"})()) == "sim3n1:"
    with pytest.raises(TypeError, match="not a device of runengine"):
        ioc_prefix(fake(IOCHealth, "x:", "health"))


def test_fault_functions_put_to_the_documented_pvs(monkeypatch):
    puts = []

    class Recorder:
        def __init__(self, pvname):
            self.pvname = pvname

        def put(self, value, **kwargs):
            puts.append((self.pvname, value))

    monkeypatch.setattr(faults, "_signal", Recorder)
    det, temp = fake(PointDetector, "d:", "det"), fake(TemperatureController, "t:", "temp")
    motor = fake(Motor, "m:mtr2", "m2")
    faults.freeze_heartbeat("m:")
    faults.thaw_heartbeat(det)
    faults.fail_puts(temp)
    faults.allow_puts("m:")
    faults.drop_beam("r:")
    faults.restore_beam(fake(BeamMonitor, "r:", "beam"))
    with faults.stall_motor(motor) as fault:
        assert fault.pvname == "m:mtr2:FAULT:STALL"
    faults.stall(temp)
    assert puts == [
        ("m:FAULT:FREEZE_HB", 1),
        ("d:FAULT:FREEZE_HB", 0),
        ("t:FAULT:FAIL_PUTS", 1),
        ("m:FAULT:FAIL_PUTS", 0),
        ("r:FAULT:DROP_BEAM", 1),
        ("r:FAULT:DROP_BEAM", 0),
        ("m:mtr2:FAULT:STALL", 1),
        ("m:mtr2:FAULT:STALL", 0),  # left the with block
        ("t:FAULT:STALL", 1),
    ]
    with pytest.raises(TypeError, match=r"not a runengine\.devices\.hardware\.Motor"):
        faults.stall_motor(temp)


# ---- IOC logic, in-process -----------------------------------------------------------------
def run(coro, timeout=5.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def test_gaussian_peaks_at_its_centre_with_its_height_and_width():
    assert gaussian(1.5, 1.5, 0.3, 800.0) == 800.0
    assert gaussian(1.8, 1.5, 0.3, 800.0) == pytest.approx(800.0 * np.exp(-0.5))
    assert gaussian(0.0, 1.5, 0.0, 800.0) == 0.0


def test_point_detector_acquires_the_peak_at_the_position_plus_noise():
    ioc = PointDetIOC(prefix="p:", seed=3)

    async def acquire_twice():
        await ioc.center.write(0.0)
        await ioc.noise.write(0.0)
        await ioc.acquire_time.write(0.0)
        await ioc.acquire.write(1)
        first = ioc.value.value
        await ioc.noise.write(5.0)
        await ioc.acquire.write(1)
        return first, ioc.value.value

    noiseless, noisy = run(acquire_twice())
    assert noiseless == 1000.0  # no motor PV: the position is 0, the centre of the peak
    assert noisy != noiseless and abs(noisy - 1000.0) < 5 * 5.0
    assert ioc.counter.value == 2 and ioc.acquire.value == 0


def test_area_detector_image_has_the_spot_where_its_pvs_put_it():
    ioc = AreaDetIOC(prefix="a:", size=(40, 30), seed=1)

    async def image():
        await ioc.spot_x.write(10.0)
        await ioc.spot_y.write(20.0)
        await ioc.acquire_time.write(0.1)
        return ioc.make_image()

    frame = run(image())
    assert frame.shape == (30, 40) and frame.dtype == np.int32
    assert np.unravel_index(frame.argmax(), frame.shape) == (20, 10)
    # the spot integrates to intensity * t * 2 pi sigma^2, above the dark counts
    expected = 0.1 * 1e5 * 2 * np.pi * 4.0**2 + 2.0 * frame.size
    assert frame.sum() == pytest.approx(expected, rel=0.02)
    with pytest.raises(ValueError, match="at most"):
        AreaDetIOC(prefix="a:", size=(1024, 1024))


def test_motor_moves_at_its_velocity_within_limits_and_stops():
    ioc = MotorsIOC(prefix="m:")
    motor = ioc.mtr1
    fields = motor.fields

    async def scenario():
        await fields.velocity.write(100.0)
        await fields.user_low_limit.write(-2.0)
        await fields.user_high_limit.write(2.0)
        with pytest.raises(CaprotoValueError):
            await motor.motor.write(3.0)  # outside the control limits the IOC set from HLM
        await motor.motor.write(1.5)
        assert fields.done_moving_to_value.value == 0  # dropped before the put returned
        loop = asyncio.get_running_loop()
        start = loop.time()
        await motor._move(asyncio.sleep)
        took = loop.time() - start
        assert fields.user_readback_value.value == 1.5 and fields.done_moving_to_value.value == 1
        assert 0.015 - 0.005 <= took < 0.5  # 1.5 at 100/s: 15 ms
        await fields.velocity.write(10.0)
        await motor.motor.write(-1.5)  # 0.3 s away
        moving = asyncio.create_task(motor._move(asyncio.sleep))
        while fields.user_readback_value.value == 1.5:  # bounded by run()'s timeout
            await asyncio.sleep(0.005)
        motor.request_stop()
        await moving
        assert -1.5 < fields.user_readback_value.value < 1.5  # stopped on the way
        assert motor.motor.value == fields.user_readback_value.value
        await ioc.fail_puts.write(1)
        with pytest.raises(InjectedFault, match="FAIL_PUTS"):
            await motor.motor.write(0.0)

    run(scenario())


def test_temperature_ramps_at_its_rate_and_raises_done():
    ioc = TemperatureIOC(prefix="t:")

    async def scenario():
        await ioc.rate.write(200.0)
        await ioc.setpoint.write(305.0)
        assert ioc.done.value == 0
        loop = asyncio.get_running_loop()
        start = loop.time()
        await ioc._ramp()
        return loop.time() - start

    took = run(scenario())
    assert ioc.readback.value == 305.0 and ioc.done.value == 1
    assert 0.04 <= took < 1.0  # 10 K at 200 K/s: 50 ms


def test_beam_current_wobbles_slowly_around_nominal():
    ioc = BeamIOC(prefix="r:", seed=2)
    samples = [ioc.stored(ioc.started + t) for t in np.linspace(0, 30, 61)]
    assert all(abs(s - 400.0) < 0.5 + 5 * 0.05 for s in samples)
    assert max(samples) - min(samples) > 0.8  # the 0.5 mA wobble is there
