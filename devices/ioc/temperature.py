"""Simulated temperature controller: a setpoint, a readback that ramps to it, a done flag.

    python -m runengine.devices.ioc.temperature --prefix PFX -q --interfaces 127.0.0.1

PVs (``PFX`` is ``--prefix``), besides ``HEARTBEAT``/``UPTIME``/``FAULT:*`` of every IOC:

``PFX SP``    setpoint (K, 0..1000); a put starts a ramp and drops ``DONE`` to 0 at once
``PFX RBV``   readback (K), moves towards SP at ``RATE``, updated every 20 ms (starts at 295)
``PFX RATE``  ramp rate in K/s (default 100)
``PFX DONE``  1 when RBV has reached SP; every put to SP makes it go 1 -> 0 -> 1
``PFX FAULT:STALL``  fault: while non-zero the ramp holds where it is (DONE stays 0)

``FAULT:FAIL_PUTS`` makes puts to ``SP`` raise.
"""

from __future__ import annotations

import asyncio
import math
import time

from caproto.server import pvproperty

from ._common import SimIOC, main

TICK = 0.02


class TemperatureIOC(SimIOC):
    """A temperature controller whose readback ramps to the setpoint at a set rate."""

    setpoint = pvproperty(
        value=295.0, name="SP", precision=3, units="K",
        lower_ctrl_limit=0.0, upper_ctrl_limit=1000.0,
    )  # fmt: skip
    readback = pvproperty(value=295.0, name="RBV", read_only=True, precision=3, units="K")
    rate = pvproperty(value=100.0, name="RATE", precision=3, units="K/s")
    done = pvproperty(value=1, name="DONE", read_only=True)
    stall = pvproperty(value=0, name="FAULT:STALL", doc="fault: the ramp holds")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._wake = asyncio.Event()

    @setpoint.putter
    async def setpoint(self, instance, value):
        self.check_put(instance.pvname)
        await self.done.write(0)  # before the put returns: a client always sees 1 -> 0 -> 1
        self._wake.set()
        return value

    @readback.startup
    async def readback(self, instance, async_lib) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._ramp()

    async def _ramp(self) -> None:
        value = self.readback.value
        last = time.monotonic()
        while True:
            await asyncio.sleep(TICK)
            now = time.monotonic()
            elapsed, last = now - last, now
            if self.stall.value:
                continue
            target = self.setpoint.value
            step = abs(self.rate.value) * elapsed
            diff = target - value
            value = target if abs(diff) <= step else value + math.copysign(step, diff)
            await self.readback.write(value)
            if value == target:
                break
        self._wake.clear()
        await self.done.write(1)


if __name__ == "__main__":
    main(TemperatureIOC, default_prefix="temp:")
