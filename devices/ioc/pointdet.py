"""Simulated point detector: a gaussian peak in a motor's position, plus noise.

    python -m runengine.devices.ioc.pointdet --prefix PFX -q --interfaces 127.0.0.1 \
        --motor-pv MOTORPFX mtr1.RBV

The IOC reads the motor over Channel Access (caproto's asyncio client, inside the IOC), so its
``EPICS_CA_ADDR_LIST`` must reach the motor IOC. Without ``--motor-pv`` the position is 0.

PVs (``PFX`` is ``--prefix``), besides ``HEARTBEAT``/``UPTIME``/``FAULT:*`` of every IOC:

``PFX Acquire``           put 1 to acquire; the put completes when the exposure is over
``PFX AcquireTime``       exposure in seconds (0..60, default 0.01)
``PFX Value_RBV``         the reading: HEIGHT * exp(-(x - CENTER)^2 / (2 WIDTH^2)) + NOISE * N(0,1)
``PFX Position_RBV``      x, the motor position read for the last acquisition
``PFX ArrayCounter_RBV``  acquisitions so far
``PFX CENTER``, ``PFX WIDTH``, ``PFX HEIGHT``, ``PFX NOISE``  the peak (defaults 0, 1, 1000, 1)
``PFX MOTOR_PV``          the motor PV read (a string, read-only)

``FAULT:FAIL_PUTS`` makes puts to ``Acquire`` raise.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random

from caproto import ChannelType
from caproto.server import pvproperty

from ._common import SimIOC, main


def gaussian(x: float, center: float, width: float, height: float) -> float:
    """The noiseless peak at ``x``."""
    return height * math.exp(-((x - center) ** 2) / (2 * width**2)) if width else 0.0


class PointDetIOC(SimIOC):
    """A point detector whose reading is a gaussian peak of a motor position plus noise."""

    acquire = pvproperty(value=0, name="Acquire", doc="put 1: acquire (put-complete)")
    acquire_time = pvproperty(
        value=0.01, name="AcquireTime", precision=3, units="s",
        lower_ctrl_limit=0.0, upper_ctrl_limit=60.0,
    )  # fmt: skip
    value = pvproperty(value=0.0, name="Value_RBV", read_only=True, precision=3, units="counts")
    position = pvproperty(value=0.0, name="Position_RBV", read_only=True, precision=4)
    counter = pvproperty(value=0, name="ArrayCounter_RBV", read_only=True)
    center = pvproperty(value=0.0, name="CENTER", precision=3)
    width = pvproperty(value=1.0, name="WIDTH", precision=3)
    height = pvproperty(value=1000.0, name="HEIGHT", precision=1)
    noise = pvproperty(value=1.0, name="NOISE", precision=3, doc="sigma of the gaussian noise")
    motor_pv = pvproperty(
        value="", name="MOTOR_PV", dtype=ChannelType.STRING, read_only=True, max_length=40
    )

    def __init__(self, *args, motor_pv: str | None = None, seed: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._motor_name = motor_pv or ""
        self._motor = None  # caproto asyncio client PV, made at startup (needs the loop)
        self._rng = random.Random(seed)

    @motor_pv.startup
    async def motor_pv(self, instance, async_lib) -> None:
        await instance.write(self._motor_name, verify_value=False)
        if self._motor_name:
            from caproto.asyncio.client import Context

            self._context = Context()
            (self._motor,) = await self._context.get_pvs(self._motor_name, timeout=5.0)

    async def read_position(self) -> float:
        """The motor position now (0 without a motor PV)."""
        if self._motor is None:
            return 0.0
        reading = await self._motor.read(timeout=2.0)
        return float(reading.data[0])

    @acquire.putter
    async def acquire(self, instance, value):
        self.check_put(instance.pvname)
        if not value:
            return 0
        await instance.write(1, verify_value=False)  # Acquire reads 1 while exposing
        x = await self.read_position()
        exposure = self.acquire_time.value
        if exposure > 0:  # an exposure of 0 does not wait at all
            await asyncio.sleep(exposure)
        peak = gaussian(x, self.center.value, self.width.value, self.height.value)
        await self.position.write(x)
        await self.value.write(peak + self.noise.value * self._rng.gauss(0.0, 1.0))
        await self.counter.write(self.counter.value + 1)
        return 0


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--motor-pv", help="the motor readback PV (e.g. sim:mtr1.RBV)")
    parser.add_argument("--seed", type=int, help="seed of the noise (reproducible readings)")


if __name__ == "__main__":
    main(PointDetIOC, default_prefix="det:", add_arguments=_arguments)
