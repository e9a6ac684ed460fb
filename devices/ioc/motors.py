"""Simulated motor IOC: two motor records with velocity, soft limits, done-moving and stop.

    python -m runengine.devices.ioc.motors --prefix PFX -q --interfaces 127.0.0.1

PVs (``PFX`` is ``--prefix``), besides ``HEARTBEAT``/``UPTIME``/``FAULT:*`` of every IOC:

``PFX mtr1``, ``PFX mtr2``  motor records with the fields ophyd's ``EpicsMotor`` uses: ``.VAL``
    (move target), ``.RBV``, ``.DMOV``, ``.MOVN``, ``.VELO``, ``.ACCL``, ``.EGU``, ``.HLM``,
    ``.LLM``, ``.HLS``, ``.LLS``, ``.TDIR``, ``.STOP``. Limits (-10, 10) mm, velocity 20 mm/s.
    A move takes distance / velocity, as a real motor's does: ``.RBV`` is updated every 10 ms
    on the way, and the last stretch (shorter than 10 ms) is slept exactly, ending at the
    target, so a short move at high velocity is done in well under a tick. ``.HLM``/``.LLM``
    set the control limits of ``.VAL`` (as a real motor record does), so ophyd refuses a
    target outside them before any put.
``PFX mtrN:FAULT:STALL``  fault: while non-zero a move starts (DMOV=0) but never progresses;
    clearing it lets the move finish, ``.STOP`` ends it where it is.

``FAULT:FAIL_PUTS`` makes puts to ``.VAL`` raise.
"""

from __future__ import annotations

import asyncio
import math
import time

from caproto.server import PVGroup, SubGroup, pvproperty
from caproto.server.records import MotorFields

from ._common import SimIOC, main

TICK = 0.01  # seconds between position updates while far from the target


class SimMotorFields(MotorFields):
    """Motor record fields whose puts act at once: limits, and STOP."""

    _record_type = "motor"

    user_high_limit = pvproperty(name="HLM", value=0.0, doc="User High Limit")
    user_low_limit = pvproperty(name="LLM", value=0.0, doc="User Low Limit")
    stop = pvproperty(name="STOP", value=0, doc="Stop")

    @user_high_limit.putter
    async def user_high_limit(self, instance, value):
        await self.parent.group.apply_limits(self.user_low_limit.value, value)
        return value

    @user_low_limit.putter
    async def user_low_limit(self, instance, value):
        await self.parent.group.apply_limits(value, self.user_high_limit.value)
        return value

    @stop.putter
    async def stop(self, instance, value):
        if value:
            self.parent.group.request_stop()
        return 0


class SimMotor(PVGroup):
    """One motor record and its stall fault. The owning IOC is ``parent``."""

    motor = pvproperty(value=0.0, name="", record=SimMotorFields, precision=3, units="mm")
    stall = pvproperty(value=0, name=":FAULT:STALL", doc="fault: moves never finish")

    def __init__(self, *args, velocity=20.0, limits=(-10.0, 10.0), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._defaults = (velocity, limits)
        self._target = 0.0
        self._wake = asyncio.Event()
        self._stop = False

    @property
    def fields(self) -> SimMotorFields:
        return self.motor.field_inst

    async def apply_limits(self, low: float, high: float) -> None:
        """Make (low, high) the control limits of .VAL; equal values mean no limits."""
        await self.motor.write_metadata(lower_ctrl_limit=low, upper_ctrl_limit=high)

    def request_stop(self) -> None:
        self._stop = True
        self._wake.set()

    @motor.putter
    async def motor(self, instance, value):
        self.parent.check_put(instance.pvname)
        self._target = float(value)
        self._stop = False
        # Done-moving drops before the put returns, as the motor record does: a client that
        # watches DMOV always sees 1 -> 0 -> 1, even for a move to where the motor already is.
        await self.fields.done_moving_to_value.write(0)
        self._wake.set()
        return value

    @motor.startup
    async def motor(self, instance, async_lib) -> None:
        velocity, (low, high) = self._defaults
        fields = self.fields
        await fields.velocity.write(velocity)
        await fields.engineering_units.write("mm")
        await fields.display_precision.write(3)
        # ophyd describes a motor by its readback: give it the units and precision of .VAL
        await fields.user_readback_value.write_metadata(precision=3, units="mm")
        await fields.user_low_limit.write(low)
        await fields.user_high_limit.write(high)
        await self.apply_limits(low, high)
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._move(async_lib.library.sleep)

    async def _move(self, sleep) -> None:
        fields = self.fields
        position = fields.user_readback_value.value  # where the motor was at time ``last``
        await fields.motor_is_moving.write(1)
        await fields.direction_of_travel.write(1 if self._target >= position else 0)
        last = time.monotonic()
        while True:
            # A whole tick while far from the target; within a tick of it, only the time left
            # (distance / velocity, less what passed since ``last``), then arrive exactly.
            wait, arriving = TICK, None
            if not self.stall.value:
                speed = abs(fields.velocity.value or 1.0)
                left = abs(self._target - position) / speed - (time.monotonic() - last)
                if left <= TICK:
                    wait, arriving = max(0.0, left), self._target
            await sleep(wait)
            now = time.monotonic()
            elapsed, last = now - last, now
            if self._stop:
                self._stop = False
                await self.motor.write(position, verify_value=False)
                break
            if self.stall.value:
                continue
            diff = self._target - position
            step = abs(fields.velocity.value or 1.0) * elapsed
            if self._target == arriving or abs(diff) <= step:  # arriving: unless retargeted
                position = self._target
            else:
                position += math.copysign(step, diff)
            await fields.user_readback_value.write(position)
            await fields.dial_readback_value.write(position)
            if position == self._target:
                break
        self._wake.clear()  # a retarget during the move was followed already
        await fields.motor_is_moving.write(0)
        await fields.done_moving_to_value.write(1)


class MotorsIOC(SimIOC):
    """Two simulated motor records, mtr1 and mtr2."""

    mtr1 = SubGroup(SimMotor, prefix="mtr1")
    mtr2 = SubGroup(SimMotor, prefix="mtr2")


if __name__ == "__main__":
    main(MotorsIOC, default_prefix="sim:")
