"""The no-engine floor does the plan's device work, all of it, and nothing else."""

from __future__ import annotations

import pytest
from bluesky import plans as bp
from bluesky.utils import Msg
from ophyd import Signal, StatusBase
from ophyd.sim import SynAxis

from bench.bare import NoEngine


class CountedSignal(Signal):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.triggers = self.reads = 0

    def trigger(self):
        self.triggers += 1
        return super().trigger()

    def read(self):
        self.reads += 1
        return super().read()


def test_count_triggers_and_reads_each_point_once():
    det = CountedSignal(name="det", value=1.0)
    NoEngine()(bp.count([det], 7), [lambda name, doc: pytest.fail("no documents expected")])
    assert (det.triggers, det.reads) == (7, 7)


def test_a_scan_moves_the_motor_through_every_point():
    motor = SynAxis(name="motor")
    det = CountedSignal(name="det", value=1.0)
    seen = []
    motor.readback.subscribe(lambda value, **kw: seen.append(value), run=False)
    NoEngine()(bp.scan([det], motor, -1, 1, 5))
    assert det.triggers == 5
    assert [round(v, 6) for v in seen] == [-1.0, -0.5, 0.0, 0.5, 1.0]


def test_a_failed_status_fails_the_wait():
    class Failing(SynAxis):
        def set(self, value):
            status = StatusBase()
            status.set_exception(RuntimeError(f"cannot go to {value}"))
            return status

    def plan(motor):
        yield Msg("set", motor, 3, group="g")
        yield Msg("wait", None, group="g")

    with pytest.raises(RuntimeError, match="cannot go to 3"):
        NoEngine()(plan(Failing(name="failing")))
