"""Plans to practise interruptions on, from the "Pausing and Resuming" guide."""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import Any

from bluesky.utils import Msg

from runengine.console import announce

__all__ = ["cautious_stepscan", "do_nothing"]


def cautious_stepscan(det: Any, motor: Any, start: int = -5, stop: int = 5) -> Generator:
    """Step ``motor`` from ``start`` to ``stop - 1`` reading ``det``, pausing after each step.

    Each pause is a deferred one taken at the next checkpoint, so ``RE.resume()`` carries on
    with the next step and no point is taken twice; ``RE.stop()`` ends the scan cleanly.
    """
    yield Msg("open_run", plan_name="cautious_stepscan")
    yield Msg("declare_stream", None, motor, det, name="primary")
    for position in range(start, stop):
        yield Msg("checkpoint")
        yield Msg("create", name="primary")
        yield Msg("set", motor, position, group="step")
        yield Msg("wait", None, group="step")
        yield Msg("trigger", det, group="det")
        yield Msg("wait", None, group="det")
        motor_reading = yield Msg("read", motor)
        det_reading = yield Msg("read", det)
        yield Msg("save")
        m = motor_reading[motor.name]["value"]
        d = det_reading[det.name]["value"]
        announce(f"Value at {m} is {d}. Pausing.")
        yield Msg("pause", None, defer=True)
    yield Msg("checkpoint")
    yield Msg("close_run")


def do_nothing(timeout: float = 5, step: float = 0.1) -> Generator:
    """Loop through checkpoints for about ``timeout`` seconds: a run with nothing in it.

    Unlike bluesky's example it sleeps with ``Msg('sleep')``, so the engine stays responsive.
    """
    deadline = time.monotonic() + timeout
    yield Msg("open_run", plan_name="do_nothing")
    while time.monotonic() < deadline:
        yield Msg("checkpoint")
        yield Msg("sleep", None, step)
    yield Msg("checkpoint")
    yield Msg("close_run")
