"""Simulated storage-ring beam and a beamline shutter.

    python -m runengine.devices.ioc.beam --prefix PFX -q --interfaces 127.0.0.1 [--seed N]

PVs (``PFX`` is ``--prefix``), besides ``HEARTBEAT``/``UPTIME``/``FAULT:*`` of every IOC:

``PFX CURRENT``      beam current (mA), updated every 0.1 s: NOMINAL with a slow wobble
                     (0.5 mA over 30 s, plus 0.05 mA noise); refills at REFILL_RATE after a loss
``PFX NOMINAL``      the stored current (default 400 mA)
``PFX REFILL_RATE``  mA/s while refilling after a beam loss (default 1000)
``PFX SHUTTER``      put "Open"/"Close" (or 1/0); the put completes when the shutter got there
``PFX SHUTTER_RBV``  "Open"/"Closed" (or 1/0); starts "Closed"
``PFX SHUTTER_TIME`` seconds a shutter move takes (default 0.05)
``PFX FAULT:DROP_BEAM``  fault: non-zero dumps the beam (CURRENT 0 at the next update);
                     0 restores it (CURRENT ramps back to NOMINAL at REFILL_RATE)

``FAULT:FAIL_PUTS`` makes puts to ``SHUTTER`` raise.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import time

from caproto import ChannelType
from caproto.server import pvproperty

from ._common import SimIOC, main

UPDATE = 0.1
WOBBLE_AMPLITUDE, WOBBLE_PERIOD, NOISE = 0.5, 30.0, 0.05


class BeamIOC(SimIOC):
    """Ring current with a slow wobble and beam-loss fault; a shutter with a readback."""

    current = pvproperty(value=400.0, name="CURRENT", read_only=True, precision=2, units="mA")
    nominal = pvproperty(value=400.0, name="NOMINAL", precision=1, units="mA")
    refill_rate = pvproperty(value=1000.0, name="REFILL_RATE", precision=1, units="mA/s")
    drop_beam = pvproperty(value=0, name="FAULT:DROP_BEAM", doc="fault: beam loss")
    shutter = pvproperty(
        value="Close", name="SHUTTER", dtype=ChannelType.ENUM, enum_strings=["Close", "Open"]
    )
    shutter_rbv = pvproperty(
        value="Closed", name="SHUTTER_RBV", dtype=ChannelType.ENUM,
        enum_strings=["Closed", "Open"], read_only=True,
    )  # fmt: skip
    shutter_time = pvproperty(value=0.05, name="SHUTTER_TIME", precision=3, units="s")

    def __init__(self, *args, seed: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._rng = random.Random(seed)

    def stored(self, now: float) -> float:
        """The current of a healthy ring at ``now`` (monotonic seconds)."""
        phase = 2 * math.pi * (now - self.started) / WOBBLE_PERIOD
        wobble = WOBBLE_AMPLITUDE * math.sin(phase) + self._rng.gauss(0.0, NOISE)
        return self.nominal.value + wobble

    @current.startup
    async def current(self, instance, async_lib) -> None:
        level = self.nominal.value
        last = time.monotonic()
        while True:
            await asyncio.sleep(UPDATE)
            now = time.monotonic()
            elapsed, last = now - last, now
            healthy = self.stored(now)
            if self.drop_beam.value:
                level = 0.0
            else:
                level = min(healthy, level + abs(self.refill_rate.value) * elapsed)
            await instance.write(level)

    @shutter.putter
    async def shutter(self, instance, value):
        self.check_put(instance.pvname)
        opening = value in ("Open", 1)
        await asyncio.sleep(max(0.0, self.shutter_time.value))
        await self.shutter_rbv.write("Open" if opening else "Closed")
        return value


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, help="seed of the current's noise")


if __name__ == "__main__":
    main(BeamIOC, default_prefix="ring:", add_arguments=_arguments)
