"""The fault matrix: every IOC killed at every phase of a point, and restarted after a delay.

One beamline of all five IOCs (motors, pointdet, areadet, temperature, beam), its
:class:`SuspendOnDisconnect` installed, and a scan of m1 whose every point uses a device of
each IOC: it moves m1 (motors), triggers and reads ``det`` (pointdet), ``cam`` (areadet),
``temp`` (temperature) and ``beam`` (beam), and sleeps between points. An IOC is killed with
SIGKILL at one phase of the second point (from the engine's message hook, so the moment is
exact) and restarted from the main thread 0.5 to 3 s later:

- ``move``: the ``set`` of m1; ``trigger``: the ``trigger`` of cam (its exposure);
  ``read``: the ``read`` of cam; ``between``: the per-step ``sleep``;
- ``pause``: ``RE.request_pause()`` at the ``set`` of m1, the kill once paused, the restart,
  then ``RE.resume()`` (which the suspender holds until the IOC is back).

Every run must end ``success`` with each planned point stored exactly once (seq_nums 1..N,
positions as planned). CI runs a Latin square of ten cases (each IOC and each phase twice);
the full 25 and a randomised soak are ``slow`` (``pytest -m slow``). An IOC that never comes
back fails the run after the suspender's ``give_up_after``, naming the IOC and its PVs.
"""

from __future__ import annotations

import os
import random
import threading
import time

import numpy as np
import pytest
from bluesky import plan_stubs as bps
from bluesky import plans as bp
from bluesky.utils import RunEngineInterrupted

from runengine import RunEngine
from runengine.devices.beamline import Beamline, DeviceDisconnectedError, connect_all

pytestmark = pytest.mark.integration

IOCS = ["motors", "pointdet", "areadet", "temperature", "beam"]
PHASES = {  # phase -> the message (command, object name) at which the IOC is killed
    "move": ("set", "m1"),
    "trigger": ("trigger", "cam"),
    "read": ("read", "cam"),
    "between": ("sleep", None),
    "pause": ("set", "m1"),
}
DELAYS = [0.5, 1.5, 3.0]  # s from the kill to the restart
POINTS = 4
NTH = 2  # the point at which the IOC dies


def _case(i: int, j: int, **marks) -> pytest.param:
    ioc, phase = IOCS[i], list(PHASES)[j]
    delay = DELAYS[(i + j) % len(DELAYS)]
    return pytest.param(ioc, phase, delay, id=f"{ioc}-{phase}-{delay:g}s", **marks)


#: Each IOC and each phase twice, the three delays spread over them (a Latin square).
CI_CASES = [(i, (i + k) % 5) for i in range(5) for k in (0, 2)]
MATRIX = [
    _case(i, j) if (i, j) in CI_CASES else _case(i, j, marks=pytest.mark.slow)
    for i in range(5)
    for j in range(5)
]


@pytest.fixture(scope="module")
def bl():
    with Beamline(IOCS, seed=0) as beamline:
        for cam in (beamline.det, beamline.cam):
            cam.acquire_time.set(0.02).wait(5)
        yield beamline


def per_step(detectors, step, pos_cache):
    yield from bps.one_nd_step(detectors, step, pos_cache)
    yield from bps.sleep(0.05)


def scan(bl, points: int = POINTS):
    return bp.scan([bl.det, bl.cam, bl.temp, bl.beam], bl.m1, -1, 1, points, per_step=per_step)


class Watch:
    """The engine's message hook: kills ``ioc`` at the ``nth`` ``(command, obj)`` message (or,
    with ``pause``, flags that moment instead) and notes when the suspension began and ended."""

    def __init__(self, bl, ioc: str, command: str, obj: str | None, nth: int, pause: bool):
        self.bl, self.ioc, self.command, self.obj, self.nth, self.pause = (
            bl, ioc, command, obj, nth, pause)  # fmt: skip
        self.count = 0
        self.at = threading.Event()
        self.killed = self.restarted = self.suspended = self.resumed = None

    def __call__(self, msg) -> None:
        name = getattr(msg.obj, "name", None)
        if msg.command == self.command and name == self.obj:
            self.count += 1
            if self.count == self.nth:
                if not self.pause:
                    self.kill()
                self.at.set()
        elif msg.command == "_start_suspender" and self.suspended is None:
            self.suspended = time.monotonic()
        elif msg.command == "_resume_from_suspender" and self.resumed is None:
            self.resumed = time.monotonic()

    def kill(self) -> None:
        self.bl.iocs[self.ioc].kill()
        self.killed = time.monotonic()

    def restart(self) -> None:
        self.restarted = time.monotonic()
        self.bl.iocs[self.ioc].restart()


def engine(bl, **suspender_kwargs) -> RunEngine:
    RE = RunEngine({}, context_managers=[])
    RE.install_suspender(bl.disconnect_suspender(**suspender_kwargs))
    return RE


def run_case(bl, RE, watch: Watch, delay: float, points: int = POINTS) -> list:
    """Run the scan in a thread; kill (or pause, kill), wait ``delay``, restart; the docs."""
    docs: list = []
    token = RE.subscribe(lambda name, doc: docs.append((name, doc)))
    RE.msg_hook = watch
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(RE(scan(bl, points)))
        except BaseException as exc:
            outcome.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    try:
        assert watch.at.wait(30), "the moment of the kill never came"
        if watch.pause:
            RE.request_pause()
            runner.join(30)
            assert isinstance(outcome[0], RunEngineInterrupted), outcome
            assert RE.state == "paused"
            watch.kill()
        time.sleep(delay)
        watch.restart()
        if watch.pause:
            outcome.append(RE.resume())
        runner.join(60)
        assert not runner.is_alive(), "the scan did not end within 60 s of the restart"
    finally:
        if not RE.state.is_idle:
            RE.halt()
        runner.join()
        RE.msg_hook = None
        RE.unsubscribe(token)
        RE.clear_suspenders()
    assert not isinstance(outcome[-1], BaseException), outcome[-1]
    return docs


def every_point_once(docs, points: int = POINTS) -> None:
    stop = next(d for n, d in docs if n == "stop")
    assert stop["exit_status"] == "success", stop
    assert [n for n, _ in docs].count("start") == 1
    events = [d for n, d in docs if n == "event"]
    assert [e["seq_num"] for e in events] == list(range(1, points + 1))
    m1 = np.array([e["data"]["m1"] for e in events])
    np.testing.assert_allclose(m1, np.linspace(-1, 1, points), atol=0.01)
    for key in ("det", "cam_total", "temp", "beam"):
        assert all(key in e["data"] for e in events), key


def report(watch: Watch, label: str) -> str:
    def since(t, t0):
        return "-" if t is None or t0 is None else f"{t - t0:.2f} s"

    line = (f"{label}: suspended {since(watch.suspended, watch.killed)} after the kill, "
            f"resumed {since(watch.resumed, watch.restarted)} after the restart began")  # fmt: skip
    print(line)
    return line


@pytest.mark.parametrize(("ioc", "phase", "delay"), MATRIX)
def test_an_ioc_killed_at_a_phase_of_a_point_costs_no_point(bl, ioc, phase, delay):
    connect_all(bl.devices.values(), timeout=20)  # whatever the case before left
    RE = engine(bl)
    command, obj = PHASES[phase]
    watch = Watch(bl, ioc, command, obj, NTH, pause=phase == "pause")
    docs = run_case(bl, RE, watch, delay)
    report(watch, f"{ioc} killed at {phase}, restarted after {delay:g} s")
    every_point_once(docs)
    if phase != "pause":  # paused, the IOC may be back before the resume: nothing to suspend
        assert watch.suspended is not None and watch.resumed is not None
        assert watch.suspended - watch.killed < 5.0
    assert RE.state == "idle"


def test_an_ioc_that_never_returns_fails_the_run_naming_the_ioc_and_its_pvs(bl):
    connect_all(bl.devices.values(), timeout=20)
    RE = engine(bl, give_up_after=2.0)
    watch = Watch(bl, "pointdet", "set", "m1", NTH, pause=False)
    docs: list = []
    RE.msg_hook = watch
    try:
        with pytest.raises(DeviceDisconnectedError) as raised:
            RE(scan(bl), lambda name, doc: docs.append((name, doc)))
        failed = time.monotonic()
    finally:
        RE.msg_hook = None
        RE.clear_suspenders()
        bl.iocs["pointdet"].restart()
        connect_all(bl.devices.values(), timeout=20)
    print(f"pointdet never back: failed {failed - watch.killed:.2f} s after the kill")
    prefix = bl.iocs["pointdet"].prefix
    error = raised.value
    assert error.sources == ["pointdet"]
    assert error.pvs and all(pv.startswith(prefix) for pv in error.pvs)
    stop = next(d for n, d in docs if n == "stop")
    assert stop["exit_status"] == "fail"
    assert "'pointdet' IOC" in stop["reason"] and f"{prefix}Value_RBV" in stop["reason"]
    assert 2.0 <= failed - watch.killed < 10.0
    assert [e["seq_num"] for n, e in docs if n == "event"] == list(range(1, NTH))
    assert RE.state == "idle"


@pytest.mark.slow
def test_soak_random_iocs_killed_at_random_moments(bl):
    """``SOAK_SCANS`` scans (default 10), each with one IOC killed at a random moment after
    the scan starts and restarted 0.5-3 s later; ``SOAK_SEED`` repeats a soak."""
    seed = int(os.environ.get("SOAK_SEED", time.time_ns() % 2**32))
    scans = int(os.environ.get("SOAK_SCANS", "10"))
    print(f"soak seed {seed} ({scans} scans): SOAK_SEED={seed} repeats it")
    rng = random.Random(seed)
    points = 6
    for n in range(scans):
        connect_all(bl.devices.values(), timeout=20)
        ioc, after, delay = rng.choice(IOCS), rng.uniform(0.0, 1.5), rng.uniform(0.5, 3.0)
        RE = engine(bl)
        watch = Watch(bl, ioc, "never", "never", 0, pause=False)
        docs: list = []
        outcome: list = []

        def run(RE=RE, docs=docs, outcome=outcome) -> None:
            try:
                outcome.append(RE(scan(bl, points), lambda name, doc: docs.append((name, doc))))
            except BaseException as exc:
                outcome.append(exc)

        RE.msg_hook = watch
        runner = threading.Thread(target=run)
        runner.start()
        try:
            time.sleep(after)
            watch.kill()
            time.sleep(delay)
            watch.restart()
            runner.join(60)
            assert not runner.is_alive(), f"scan {n} did not end (seed {seed})"
        finally:
            if not RE.state.is_idle:
                RE.halt()
            runner.join()
            RE.msg_hook = None
            RE.clear_suspenders()
        label = f"scan {n}: {ioc} killed {after:.2f} s in, restarted after {delay:.2f} s"
        report(watch, label)
        assert not isinstance(outcome[0], BaseException), (label, seed, outcome[0])
        every_point_once(docs, points)
