"""An IOC killed mid-scan: the disconnect suspends the plan at once, the restart resumes it.

Over a beamline of our own (motors and the point detector), with the beamline's
:class:`SuspendOnDisconnect` installed. Each test kills an IOC with SIGKILL at one moment of
a point (from the engine's message hook, so the moment is exact), restarts it from the main
thread shortly after, and checks that the scan ends ``success`` with every planned point
stored exactly once. The failing message (a read of the dead motor, a trigger of the dead
detector) is replayed after the suspension, not thrown into the plan.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from bluesky import plan_stubs as bps
from bluesky import plans as bp

from runengine import RunEngine
from runengine.devices.beamline import Beamline, SuspendOnDisconnect

pytestmark = pytest.mark.integration

POINTS = 8
RESTART_AFTER = 0.5  # s between the kill and the restart


@pytest.fixture(scope="module")
def bl():
    with Beamline(["motors", "pointdet"], seed=0) as beamline:
        yield beamline


def slow_step(detectors, step, pos_cache):
    yield from bps.one_nd_step(detectors, step, pos_cache)
    yield from bps.sleep(0.1)


def kill_at(bl, RE, ioc: str, command: str, obj: str, nth: int) -> dict:
    """Kill ``ioc`` when the ``nth`` message ``command`` to ``obj`` is sent; what happened."""
    seen = {"count": 0, "killed": None, "suspended": None, "resumed": None}

    def hook(msg):
        name = getattr(msg.obj, "name", None)
        if msg.command == command and name == obj:
            seen["count"] += 1
            if seen["count"] == nth:
                bl.iocs[ioc].kill()
                seen["killed"] = time.monotonic()
        elif msg.command == "_start_suspender" and seen["suspended"] is None:
            seen["suspended"] = time.monotonic()
        elif msg.command == "_resume_from_suspender" and seen["resumed"] is None:
            seen["resumed"] = time.monotonic()

    RE.msg_hook = hook
    return seen


def run_with_restart(bl, RE, ioc: str, seen: dict) -> tuple:
    """Run the scan in a thread; restart ``ioc`` from this thread after the kill."""
    docs, outcome = [], []

    def run():
        try:
            outcome.append(
                RE(
                    bp.scan([bl.det], bl.m1, -1, 1, POINTS, per_step=slow_step),
                    lambda name, doc: docs.append((name, doc)),
                )
            )
        except BaseException as exc:
            outcome.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while seen["killed"] is None and runner.is_alive():
            assert time.monotonic() < deadline, "the kill never happened"
            time.sleep(0.01)
        time.sleep(RESTART_AFTER)
        restarted = time.monotonic()
        bl.iocs[ioc].restart()
        seen["restarted"] = restarted
        runner.join(60)
    finally:
        if runner.is_alive():
            RE.halt()
        runner.join()
    return outcome[0], docs


def every_point_once(docs) -> None:
    stop = next(d for n, d in docs if n == "stop")
    assert stop["exit_status"] == "success", stop
    events = [d for n, d in docs if n == "event"]
    assert [e["seq_num"] for e in events] == list(range(1, POINTS + 1))
    m1 = np.array([e["data"]["m1"] for e in events])
    np.testing.assert_allclose(m1, np.linspace(-1, 1, POINTS), atol=0.01)


@pytest.mark.parametrize(
    ("ioc", "command", "obj"),
    [
        ("motors", "trigger", "det"),  # the motor IOC dies during an exposure: m1's read fails
        ("pointdet", "set", "m1"),  # the detector IOC dies while the motor moves: trigger fails
        ("motors", "set", "m1"),  # the motor IOC dies while the motor moves
        ("pointdet", "trigger", "det"),  # the detector IOC dies during an exposure
    ],
)
def test_a_killed_ioc_suspends_the_scan_and_its_restart_resumes_it(bl, ioc, command, obj):
    RE = RunEngine({}, context_managers=[])
    suspender = bl.disconnect_suspender()
    RE.install_suspender(suspender)
    seen = kill_at(bl, RE, ioc, command, obj, nth=3)
    try:
        outcome, docs = run_with_restart(bl, RE, ioc, seen)
    finally:
        RE.clear_suspenders()
    assert isinstance(outcome, tuple), outcome  # no exception thrown into the plan
    every_point_once(docs)
    assert seen["suspended"] is not None and seen["resumed"] is not None
    kill_to_suspended = seen["suspended"] - seen["killed"]
    restart_to_resumed = seen["resumed"] - seen["restarted"]
    print(f"{ioc} at {command} {obj}: suspended {kill_to_suspended:.2f} s after the kill, "
          f"resumed {restart_to_resumed:.2f} s after the restart began")  # fmt: skip
    assert kill_to_suspended < 5.0  # generous: the suspension follows the disconnect
    assert suspender.disconnected == []


def test_an_ioc_that_never_returns_fails_the_scan_naming_its_pvs(bl):
    """Without the restart the suspension holds; a halt ends it, the PVs are named."""
    RE = RunEngine({}, context_managers=[])
    suspender = bl.disconnect_suspender()
    RE.install_suspender(suspender)
    seen = kill_at(bl, RE, "pointdet", "set", "m1", nth=2)
    outcome = []

    def run():
        try:
            outcome.append(RE(bp.scan([bl.det], bl.m1, -1, 1, POINTS, per_step=slow_step)))
        except BaseException as exc:
            outcome.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while seen["suspended"] is None:
            assert time.monotonic() < deadline, "no suspension"
            time.sleep(0.01)
        assert any(name.startswith("det") for name in suspender.disconnected)
        assert "Disconnected: det" in suspender._get_justification()
        RE.abort("the detector IOC is gone")
        runner.join(30)
    finally:
        RE.clear_suspenders()
        if runner.is_alive():
            RE.halt()
        runner.join()
        bl.iocs["pointdet"].restart()
        bl.det.wait_for_connection(timeout=30)
    assert RE.state == "idle"


def test_it_needs_channel_access_signals():
    from ophyd.sim import SynAxis

    with pytest.raises(ValueError, match="Channel Access signals"):
        SuspendOnDisconnect([SynAxis(name="x")])
