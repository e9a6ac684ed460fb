"""SuspendOnDisconnect without IOCs: fake Channel Access signals, the give-up bound."""

from __future__ import annotations

import threading
import time

from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp

from runengine import RunEngine
from runengine.suspenders.connection import DeviceDisconnectedError, SuspendOnDisconnect


class FakeSignal:
    """Just what SuspendOnDisconnect uses of an ophyd EpicsSignal."""

    SUB_META = "meta"

    def __init__(self, name: str, pvname: str) -> None:
        self.name, self.pvname, self.connected = name, pvname, True
        self._subs: list = []

    def subscribe(self, cb, event_type=None, run=False):
        self._subs.append(cb)

    def clear_sub(self, cb, event_type=None):
        if cb in self._subs:
            self._subs.remove(cb)

    def set_connected(self, connected: bool) -> None:
        self.connected = connected
        for cb in list(self._subs):
            cb(obj=self, connected=connected)


def plan(points: int = 20):
    @bpp.run_decorator()
    def inner():
        for _ in range(points):
            yield from bps.checkpoint()
            yield from bps.sleep(0.05)

    return (yield from inner())


def run(RE, suspender, action):
    RE.install_suspender(suspender)
    docs: list = []
    result: list = []
    worker = threading.Thread(target=action)
    worker.start()
    try:
        result.append(RE(plan(), lambda name, doc: docs.append((name, doc))))
    except BaseException as exc:
        result.append(exc)
    finally:
        worker.join()
        RE.clear_suspenders()
    return result[0], docs


def test_a_signal_that_never_returns_fails_the_plan_naming_its_pv_and_source():
    sigs = [FakeSignal("det", "XYZ:det:Value"), FakeSignal("m1", "ABC:m1.RBV")]
    suspender = SuspendOnDisconnect(
        sigs, sleep=0.05, give_up_after=0.5, sources={"XYZ:": "pointdet", "ABC:": "motors"}
    )
    RE = RunEngine({}, context_managers=[], call_returns_result=True)
    started = time.monotonic()
    outcome, docs = run(RE, suspender, lambda: (time.sleep(0.2), sigs[0].set_connected(False)))
    elapsed = time.monotonic() - started
    assert isinstance(outcome, DeviceDisconnectedError), outcome  # RE() raises the plan's error
    assert outcome.pvs == ["XYZ:det:Value"]
    assert outcome.sources == ["pointdet"]
    stop = next(d for n, d in docs if n == "stop")
    assert stop["exit_status"] == "fail"
    assert "'pointdet' IOC (XYZ:det:Value)" in stop["reason"]
    assert "ABC:" not in stop["reason"]
    assert 0.6 < elapsed < 5
    assert RE.state == "idle"


def test_a_signal_back_within_the_bound_resumes():
    sig = FakeSignal("det", "XYZ:det:Value")
    suspender = SuspendOnDisconnect([sig], sleep=0.05, give_up_after=1.0)

    def blip():
        time.sleep(0.2)
        sig.set_connected(False)
        time.sleep(0.6)
        sig.set_connected(True)

    RE = RunEngine({}, context_managers=[], call_returns_result=True)
    outcome, _docs = run(RE, suspender, blip)
    assert outcome.exit_status == "success", outcome
    assert RE.state == "idle"


def test_without_a_bound_it_holds_until_aborted():
    sig = FakeSignal("det", "XYZ:det:Value")
    suspender = SuspendOnDisconnect([sig], sleep=0.05, give_up_after=None)
    RE = RunEngine({}, context_managers=[], call_returns_result=True)
    seen: list = []

    def lose_then_abort():
        time.sleep(0.2)
        sig.set_connected(False)
        time.sleep(1.0)
        seen.append((RE.state, RE.suspended))
        RE.abort("gone")

    outcome, docs = run(RE, suspender, lose_then_abort)
    assert seen and seen[0][1], seen  # suspended when aborted
    assert next(d for n, d in docs if n == "stop")["exit_status"] == "abort", outcome
    assert suspender.gave_up() is None
