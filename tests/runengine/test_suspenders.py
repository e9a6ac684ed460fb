"""bluesky's suspender classes on our engine, including the cases bluesky gets wrong."""

import threading
import time

import pytest
from bluesky import plan_stubs as bps
from bluesky.suspenders import (
    SuspendBoolHigh,
    SuspendBoolLow,
    SuspendCeil,
    SuspendFloor,
    SuspendInBand,
    SuspendWhenChanged,
)
from bluesky.utils import Msg
from ophyd import Signal

from runengine import RunEngineInterrupted
from tests.timing import later


def wait_until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def counting_plan(n=5, step=0.05):
    yield Msg("open_run")
    for _ in range(n):
        yield Msg("checkpoint")
        yield Msg("sleep", None, step)
        yield Msg("null")
    yield Msg("close_run")


def tripped_signal():
    signal = Signal(name="beam", value=0)
    signal.put(1)  # a put, so that subscribing calls back at once, as a connected PV does
    return signal


def commands_of(RE):
    seen = []
    RE.msg_hook = lambda msg: seen.append(msg.command)
    return seen


@pytest.mark.parametrize(
    ("make", "trip", "clear"),
    [
        (lambda s: SuspendBoolHigh(s), 1, 0),
        (lambda s: SuspendBoolLow(s), 0, 1),
        (lambda s: SuspendFloor(s, 0.5), 0.1, 1.0),
        (lambda s: SuspendCeil(s, 0.5), 1.0, 0.1),
        (lambda s: SuspendInBand(s, 0.2, 0.8), 1.0, 0.5),
        (lambda s: SuspendWhenChanged(s, expected_value=0.5, allow_resume=True), 0.9, 0.5),
    ],
    ids=["BoolHigh", "BoolLow", "Floor", "Ceil", "InBand", "WhenChanged"],
)
def test_bluesky_suspender_classes_suspend_and_resume(RE, make, trip, clear):
    signal = Signal(name="beam", value=clear)
    RE.install_suspender(make(signal))
    seen = commands_of(RE)
    later(0.08, signal.put, trip)
    later(0.4, signal.put, clear)
    start = time.monotonic()
    RE(counting_plan())
    assert "_start_suspender" in seen and "_resume_from_suspender" in seen
    assert time.monotonic() - start > 0.35  # it really waited for the clear
    assert RE.state == "idle"


def test_msg_sequence_of_a_suspension_matches_bluesky(RE):
    signal = Signal(name="beam", value=0)
    RE.install_suspender(SuspendBoolHigh(signal, pre_plan=[Msg("null")], post_plan=[Msg("null")]))
    seen = commands_of(RE)

    def plan():
        yield Msg("checkpoint")
        signal.put(1)
        later(0.1, signal.put, 0)
        yield Msg("sleep", None, 0.3)

    RE(plan())
    assert seen == [
        "checkpoint",
        "sleep",
        "_start_suspender",
        "rewindable",
        "null",
        "wait_for",
        "_resume_from_suspender",
        "null",
        "rewindable",
        "sleep",
    ]


def test_installed_while_tripped_outside_a_plan_holds_the_start_and_keeps_working(RE):
    """bluesky #1970: a suspender installed while tripped went deaf."""
    signal = tripped_signal()
    RE.install_suspender(SuspendBoolHigh(signal))
    seen = commands_of(RE)
    later(0.2, signal.put, 0)
    start = time.monotonic()

    def plan():
        yield from counting_plan(2)
        signal.put(1)  # and it still hears the next trip
        later(0.2, signal.put, 0)
        yield from counting_plan(2)

    RE(plan())
    assert time.monotonic() - start > 0.35
    assert seen[0] == "wait_for"
    assert seen.count("_start_suspender") == 1


def test_installed_by_a_plan_while_tripped_suspends_at_once(RE, capsys):
    """bluesky #1967: installing a tripped suspender from a plan raised in the callback."""
    signal = tripped_signal()
    suspender = SuspendBoolHigh(signal)
    seen = commands_of(RE)
    later(0.2, signal.put, 0)

    def plan():
        yield Msg("checkpoint")
        yield from bps.install_suspender(suspender)
        yield from counting_plan(2)
        yield from bps.remove_suspender(suspender)

    RE(plan())
    assert "_start_suspender" in seen
    assert "Traceback" not in capsys.readouterr().err


def test_a_trip_while_the_loop_is_busy_is_not_dropped(RE):
    """bluesky #1944: a trip arriving while the loop was blocked > 0.1 s was lost."""
    signal = Signal(name="beam", value=0)
    RE.install_suspender(SuspendBoolHigh(signal))
    seen = commands_of(RE)
    later(0.2, signal.put, 1)  # arrives while the plan below blocks the loop
    later(1.3, signal.put, 0)

    def plan():
        yield Msg("checkpoint")
        time.sleep(0.6)  # a badly behaved plan blocks the engine's thread
        yield Msg("null")
        yield Msg("checkpoint")
        yield Msg("null")

    start = time.monotonic()
    RE(plan())
    assert "_start_suspender" in seen
    assert time.monotonic() - start > 1.2


def test_a_trip_while_paused_is_honoured_on_resume(RE):
    signal = Signal(name="beam", value=0)
    RE.install_suspender(SuspendBoolHigh(signal))
    seen = commands_of(RE)
    with pytest.raises(RunEngineInterrupted):
        RE([Msg("checkpoint"), Msg("pause"), Msg("null")])
    signal.put(1)  # the beam goes while nobody is running
    later(0.3, signal.put, 0)
    start = time.monotonic()
    RE.resume()
    assert "_start_suspender" in seen
    assert time.monotonic() - start > 0.25


@pytest.mark.parametrize("engine", ["bluesky", "runengine"])
def test_a_pause_while_suspended_resumes_into_the_same_wait(engine):
    """Tripped before the pause: the replayed wait_for already waits for the suspender, so the
    resume asks it no second time (bluesky's test_pause_from_suspend)."""
    from bluesky import RunEngine as BlueskyRunEngine

    from runengine import RunEngine

    RE = (BlueskyRunEngine if engine == "bluesky" else RunEngine)({}, context_managers=[])
    signal = Signal(name="beam", value=0)
    signal.put(1)
    RE.install_suspender(SuspendBoolHigh(signal))
    seen = commands_of(RE)
    later(0.2, RE.request_pause)
    with pytest.raises(RunEngineInterrupted):
        RE([Msg("checkpoint")])
    assert seen == ["wait_for"]
    later(0.3, signal.put, 0)
    start = time.monotonic()
    RE.resume()
    assert seen == ["wait_for", "wait_for", "checkpoint"]
    assert time.monotonic() - start > 0.25  # still waited for the beam


def test_two_suspenders_hold_until_both_clear(RE):
    beam = Signal(name="beam", value=0)
    shutter = Signal(name="shutter", value=0)
    RE.install_suspender(SuspendBoolHigh(beam))
    RE.install_suspender(SuspendBoolHigh(shutter))
    later(0.05, beam.put, 1)
    later(0.15, shutter.put, 1)  # trips while the plan is already suspended
    later(0.3, beam.put, 0)
    cleared = []
    later(0.8, lambda: (cleared.append(time.monotonic()), shutter.put(0)))
    RE(counting_plan(6))
    done = time.monotonic()
    assert cleared and done >= cleared[0]  # did not go on while the shutter was closed


def test_request_suspend_directly(RE):
    import asyncio

    event = {}

    def make_future():
        event["ev"] = ev = asyncio.Event()
        RE.loop.call_later(0.2, ev.set)
        return ev.wait()

    seen = commands_of(RE)

    def plan():
        yield Msg("checkpoint")
        RE.request_suspend(make_future, justification="testing")
        yield Msg("null")
        yield Msg("null")

    RE(plan())
    assert seen[:4] == ["checkpoint", "null", "_start_suspender", "rewindable"]


def test_a_trip_during_a_fast_plan_is_heard_at_the_next_message(RE):
    """No waiting for the loop's next turn: a queued trip is taken up before the next message."""
    from bluesky import plans as bp
    from ophyd.sim import SynAxis, SynGauss

    signal = Signal(name="beam", value=0)
    RE.install_suspender(SuspendBoolHigh(signal))
    motor = SynAxis(name="motor")
    det = SynGauss("det", motor, "motor", center=0, Imax=1, sigma=1)
    seen = commands_of(RE)

    def trip_at_fourth_point(name, doc):
        if doc["seq_num"] == 4:
            signal.put(1)
            later(0.05, signal.put, 0)

    for _ in range(10):  # the last point takes far less than the loop's 5 ms turn
        seen.clear()
        RE(bp.scan([det], motor, 0, 4, 5), {"event": [trip_at_fourth_point]})
        assert "_start_suspender" in seen
        wait_until(lambda: not signal.get())


def test_a_failing_post_plan_leaves_the_engine_rewindable(RE):
    import asyncio

    def broken_post_plan():
        yield Msg("null")
        raise RuntimeError("post plan broke")

    def make_future():
        ev = asyncio.Event()
        RE.loop.call_later(0.05, ev.set)
        return ev.wait()

    def plan():
        yield Msg("checkpoint")
        RE.request_suspend(make_future, post_plan=broken_post_plan, justification="testing")
        yield Msg("null")

    with pytest.raises(RuntimeError, match="post plan broke"):
        RE(plan())
    assert RE.state == "idle"
    assert RE.rewindable is True


def test_every_event_handed_out_is_set_by_the_release(RE):
    import asyncio

    signal = Signal(name="beam", value=0)
    suspender = SuspendBoolHigh(signal)
    RE.install_suspender(suspender)
    signal.put(1)
    (wait,), _ = suspender.get_futures()
    signal.put(0)
    assert suspender.get_futures() == ([], "")

    async def released():
        await asyncio.wait_for(wait(), 2)
        return True

    assert asyncio.run_coroutine_threadsafe(released(), RE.loop).result(3)


def test_suspended_says_when_a_suspension_holds_the_plan(RE):
    """``state`` stays "running" through a suspension, as bluesky's; ``suspended`` tells."""
    sig = Signal(name="beam", value=1.0)
    RE.install_suspender(SuspendBoolLow(sig, sleep=0.05))
    seen = []

    def watch():
        wait_until(lambda: RE.state == "running")
        seen.append(("before", RE.suspended))
        sig.put(0)
        wait_until(lambda: RE.suspended)
        seen.append(("during", RE.state))
        sig.put(1)

    thread = threading.Thread(target=watch)
    thread.start()
    assert not RE.suspended
    RE(counting_plan(n=40, step=0.02))
    thread.join(5)
    assert seen == [("before", False), ("during", "running")]
    assert not RE.suspended and RE.state == "idle"


def test_a_suspension_prints_one_wording_of_the_ctrl_c_hint(RE, capsys):
    """bluesky words it two ways ("Suspending....To get prompt hit..."); we print only ours."""
    from runengine.states import SUSPENDING_MSG

    signal = Signal(name="beam", value=0)
    RE.install_suspender(SuspendBoolHigh(signal, sleep=0.05))
    later(0.08, signal.put, 1)
    later(0.3, signal.put, 0)
    RE(counting_plan())  # tripped while running
    signal.put(1)
    later(0.2, signal.put, 0)
    RE(counting_plan(1))  # tripped at the start
    hints = [line for line in capsys.readouterr().out.splitlines() if "Ctrl-C twice" in line]
    assert hints == [SUSPENDING_MSG, SUSPENDING_MSG]
