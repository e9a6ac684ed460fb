"""A tiny IOC added to the device table by ``tests/devices/test_table.py``: a lamp.

    python -m tests.devices.lamp_ioc --prefix PFX -q --interfaces 127.0.0.1 --watts 60 --seed 7

PVs (``PFX`` is ``--prefix``), besides ``HEARTBEAT``/``UPTIME``/``FAULT:*`` of every IOC:

``PFX ON``           put 1 to switch on, 0 to switch off (refused while ``FAULT:FAIL_PUTS``)
``PFX LIT``          1 while on and not blown
``PFX WATTS``        ``--watts`` (read-only)
``PFX SEED``         ``--seed``, -1 without one (read-only)
``PFX FAULT:BLOWN``  fault: non-zero keeps ``LIT`` at 0
"""

from __future__ import annotations

import argparse

from caproto.server import pvproperty

from runengine.devices.ioc._common import SimIOC, main


class LampIOC(SimIOC):
    """A lamp that lights while on, unless blown."""

    on = pvproperty(value=0, name="ON")
    lit = pvproperty(value=0, name="LIT", read_only=True)
    watts = pvproperty(value=0.0, name="WATTS", read_only=True)
    seed = pvproperty(value=-1, name="SEED", read_only=True)
    blown = pvproperty(value=0, name="FAULT:BLOWN", doc="fault: the lamp stays dark")

    def __init__(self, *args, watts: float = 0.0, seed: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._watts, self._seed = watts, -1 if seed is None else seed

    @watts.startup
    async def watts(self, instance, async_lib) -> None:
        await instance.write(self._watts)
        await self.seed.write(self._seed)

    @on.putter
    async def on(self, instance, value):
        self.check_put(instance.pvname)
        await self.lit.write(int(bool(value) and not self.blown.value))
        return value

    @blown.putter
    async def blown(self, instance, value):
        await self.lit.write(int(bool(self.on.value) and not value))
        return value


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--watts", type=float, default=0.0)
    parser.add_argument("--seed", type=int)


if __name__ == "__main__":
    main(LampIOC, default_prefix="lamp:", add_arguments=_arguments)
