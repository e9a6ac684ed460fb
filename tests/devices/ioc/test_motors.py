"""The simulated motor record: a move takes distance / velocity, not whole ticks.

In-process (the PV group's putters and move loop awaited directly, every sleep it asks for
recorded) and over Channel Access on the session's beamline. No assertion on wall-clock time
beyond generous timeouts: the sleeps the motor asks for are what is checked.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from runengine.devices.ioc.motors import TICK, MotorsIOC


def run(coro, timeout=5.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


class Recorder:
    """A ``sleep`` for ``SimMotor._move``: records each wait and the readback before it, then
    calls ``during(n, wait)`` (if given; the n-th wait, from 0) and really sleeps."""

    def __init__(self, motor, during=None) -> None:
        self.motor, self.during = motor, during
        self.waits: list[float] = []
        self.readbacks: list[float] = []

    async def __call__(self, wait: float) -> None:
        self.waits.append(wait)
        self.readbacks.append(self.motor.fields.user_readback_value.value)
        if self.during is not None:
            await self.during(len(self.waits) - 1, wait)
        await asyncio.sleep(wait)


async def motor_at(position: float, velocity: float):
    """mtr1 of an in-process IOC, at rest at ``position`` with ``velocity``."""
    motor = MotorsIOC(prefix="m:").mtr1
    fields = motor.fields
    await fields.user_low_limit.write(-10.0)
    await fields.user_high_limit.write(10.0)
    await fields.velocity.write(velocity)
    await fields.user_readback_value.write(position)
    await fields.done_moving_to_value.write(1)
    return motor


def changes(values: list) -> list:
    """``values`` without consecutive repeats."""
    return [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]


def wait_for(predicate, timeout: float = 5.0) -> bool:
    """Whether ``predicate()`` became true within ``timeout`` s (ophyd's callbacks run in its
    dispatcher thread, after a status they complete may already be done)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def done(motor) -> bool:
    fields = motor.fields
    return fields.done_moving_to_value.value == 1 and fields.motor_is_moving.value == 0


def test_a_move_shorter_than_a_tick_sleeps_only_its_own_time_and_ends_at_the_target():
    async def scenario():
        motor = await motor_at(1.0, velocity=1000.0)
        await motor.motor.write(1.01)  # 0.01 mm at 1000 mm/s: 10 us
        assert motor.fields.done_moving_to_value.value == 0
        sleep = Recorder(motor)
        await motor._move(sleep)
        return motor, sleep

    motor, sleep = run(scenario())
    assert len(sleep.waits) == 1 and 0.0 <= sleep.waits[0] <= 0.01 / 1000.0
    assert motor.fields.user_readback_value.value == 1.01  # exactly the target
    assert motor.fields.dial_readback_value.value == 1.01
    assert done(motor)


def test_a_move_to_where_the_motor_is_does_not_wait_and_still_drops_done_moving():
    async def scenario():
        motor = await motor_at(2.0, velocity=20.0)
        await motor.motor.write(2.0)
        dropped = motor.fields.done_moving_to_value.value
        sleep = Recorder(motor)
        await motor._move(sleep)
        return motor, sleep, dropped

    motor, sleep, dropped = run(scenario())
    assert dropped == 0 and sleep.waits == [0.0]
    assert motor.fields.user_readback_value.value == 2.0 and done(motor)


def test_a_long_move_updates_the_readback_every_tick_and_sleeps_only_the_rest_at_the_end():
    async def scenario():
        motor = await motor_at(0.0, velocity=20.0)
        await motor.motor.write(0.5)  # 25 ms: two ticks, then about 5 ms
        sleep = Recorder(motor)
        await motor._move(sleep)
        return motor, sleep

    motor, sleep = run(scenario())
    *ticks, last = sleep.waits
    assert all(wait == TICK for wait in ticks) and 0.0 <= last <= TICK
    assert sum(sleep.waits) <= 0.5 / 20.0 + 1e-9  # never longer than distance / velocity
    assert sleep.readbacks == sorted(sleep.readbacks) and sleep.readbacks[0] == 0.0
    assert all(0.0 < rbv < 0.5 for rbv in sleep.readbacks[1:])  # on the way
    assert motor.fields.user_readback_value.value == 0.5 and done(motor)


def test_a_retarget_during_the_last_stretch_goes_on_to_the_new_target():
    async def scenario():
        motor = await motor_at(0.0, velocity=100.0)
        await motor.motor.write(0.005)  # 50 us: the first wait is already the last stretch

        async def retarget(n, wait):
            if n == 0:
                await motor.motor.write(5.0)  # 50 ms further
            else:  # on the way: neither at the old target nor done
                assert motor.fields.done_moving_to_value.value == 0

        sleep = Recorder(motor, retarget)
        await motor._move(sleep)
        return motor, sleep

    motor, sleep = run(scenario())
    assert sleep.waits[0] < TICK
    assert 0.005 not in sleep.readbacks and sleep.readbacks == sorted(sleep.readbacks)
    assert motor.fields.user_readback_value.value == 5.0 and done(motor)


def test_a_stall_or_a_stop_during_the_last_stretch_holds_the_motor_where_it_was():
    async def stalled_then_cleared():
        motor = await motor_at(0.0, velocity=1000.0)
        await motor.motor.write(0.01)

        async def stall(n, wait):
            if n == 0:
                await motor.stall.write(1)
            elif n == 3:
                assert motor.fields.user_readback_value.value == 0.0
                assert motor.fields.done_moving_to_value.value == 0
                await motor.stall.write(0)

        sleep = Recorder(motor, stall)
        await motor._move(sleep)
        return motor, sleep

    motor, sleep = run(stalled_then_cleared())
    assert sleep.waits[1:4] == [TICK] * 3  # stalled: whole ticks, no progress
    assert motor.fields.user_readback_value.value == 0.01 and done(motor)

    async def stopped():
        motor = await motor_at(0.0, velocity=1000.0)
        await motor.motor.write(0.01)

        async def stop(n, wait):
            motor.request_stop()

        await motor._move(Recorder(motor, stop))
        return motor

    motor = run(stopped())
    assert motor.fields.user_readback_value.value == 0.0 == motor.motor.value and done(motor)


@pytest.mark.integration
def test_over_channel_access_a_tiny_fast_move_ends_exactly_at_the_target(beamline):
    m2 = beamline.m2
    velocity = m2.velocity.get()
    m2.velocity.put(1000.0, wait=True)
    seen: list[int] = []
    token = m2.motor_done_move.subscribe(lambda value, **_: seen.append(value), run=False)
    try:
        target = round(m2.position + 0.01, 3)
        for _ in ("a step of 0.01 mm: 10 us", "a move to where the motor already is"):
            del seen[:]
            status = m2.set(target)
            status.wait(timeout=5)
            assert status.success
            assert m2.user_readback.get(use_monitor=False) == target
            assert m2.motor_done_move.get(use_monitor=False) == 1
            assert m2.motor_is_moving.get(use_monitor=False) == 0
            # DMOV 1 -> 0 -> 1, as ophyd needs it (its caproto layer calls back twice per update)
            assert wait_for(lambda: changes(seen)[-2:] == [0, 1]), (target, seen)
    finally:
        m2.motor_done_move.unsubscribe(token)
        m2.velocity.put(velocity, wait=True)
