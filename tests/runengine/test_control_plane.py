"""The control plane's definite outcomes, each class of defect it was built against.

One writer (the loop thread), one table: a stop while pausing is never lost, exactly one of
two concurrent ``RE()`` calls starts, a blocked loop gives ``EngineBusy`` and no change, and
an error cut short by a suspension is decided by the replay. Random interleavings of all of
these live in ``test_control_interleavings.py``.
"""

from __future__ import annotations

import sys
import threading
import time

import pytest
from bluesky import RunEngine as BlueskyRunEngine
from bluesky import plans as bp
from bluesky.suspenders import SuspendBoolHigh
from bluesky.utils import Msg
from ophyd import Signal
from ophyd.sim import SynAxis, SynGauss

from runengine import EngineBusy, RunEngine, RunEngineInterrupted, TransitionError
from runengine.states import INTERNAL, TABLE, TRANSITIONS, decide


def stop_docs(docs):
    return [doc for name, doc in docs if name == "stop"]


def wait_for_state(RE, name: str, timeout: float = 5.0) -> None:
    """Until ``RE.state == name``; fails after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while RE.state != name:
        assert time.monotonic() < deadline, f"state stayed {RE.state}, wanted {name}"
        time.sleep(0.002)


def test_every_rule_moves_to_a_state_the_derived_transitions_allow():
    for (old, event), rule in TABLE.items():
        assert rule.next == "<beneath>" or rule.next == old or rule.next in TRANSITIONS[old]
        assert decide(old, event) is rule
    assert {event for _, event in TABLE} >= INTERNAL


@pytest.mark.parametrize("event", ["resume", "stop", "pause_now", "start"])
def test_a_refused_event_names_the_state(event):
    with pytest.raises(TransitionError, match="halting"):
        decide("halting", event)


@pytest.mark.parametrize("trial", range(20))
@pytest.mark.parametrize("when", ["pausing", "paused"])
def test_a_stop_while_pausing_always_stops(RE, docs, trial, when):
    """Fixed: stop() while 'pausing' was queued on the loop; if the plan parked first, the
    state went to 'stopping' and nothing ever decided. The stop is sent at the moment the
    state turns ``when``; the loop thread then sleeps so the plan parks with it queued."""
    calls = []

    def hook(new, old):
        if new == when and not calls:
            thread = threading.Thread(target=lambda: calls.append(RE.stop()))
            thread.start()
            calls.append(thread)
            time.sleep(0.01 * (trial % 3))  # the loop thread dawdles: the stop is queued

    RE.state_hook = hook
    with pytest.raises(RunEngineInterrupted):
        RE([Msg("open_run"), Msg("checkpoint"), Msg("pause"), Msg("sleep", None, 0.05)])
    calls[0].join(5)
    assert not calls[0].is_alive() and len(calls) == 2  # stop() returned
    wait_for_state(RE, "idle")
    RE.state_hook = None
    assert [doc["exit_status"] for doc in stop_docs(docs)] == ["success"]
    assert RE(bp.count([SynGauss("det", SynAxis(name="m"), "m", 0, 1)]))  # and the next works


def test_two_threads_calling_RE_at_once_start_exactly_one(RE, docs):
    """Fixed: with a tiny switch interval both calls could run, or both be refused."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        plan = [Msg("open_run"), Msg("sleep", None, 0.01), Msg("close_run")]

        def call(barrier: threading.Barrier, results: list) -> None:
            barrier.wait()
            try:
                results.append(RE(list(plan)))
            except RuntimeError as err:
                results.append(err)

        for trial in range(150):
            barrier = threading.Barrier(2)
            results: list = []
            threads = [threading.Thread(target=call, args=(barrier, results)) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(5)
            started = [r for r in results if isinstance(r, tuple)]
            refused = [r for r in results if isinstance(r, RuntimeError)]
            assert len(started) == 1 and len(started[0]) == 1, (trial, results)
            assert len(refused) == 1 and "running state" in str(refused[0]), (trial, results)
    finally:
        sys.setswitchinterval(interval)
    assert len(stop_docs(docs)) == 150
    assert all(doc["exit_status"] == "success" for doc in stop_docs(docs))


def test_a_refused_call_changes_nothing(RE, docs):
    """The second caller's subscriptions and metadata are not taken when it is refused."""
    seen = []
    thread = threading.Thread(target=RE, args=([Msg("open_run"), Msg("sleep", None, 0.2)],))
    thread.start()
    wait_for_state(RE, "running")
    with pytest.raises(RuntimeError, match="running state"):
        RE([Msg("null")], lambda name, doc: seen.append(name), sample="other")
    thread.join(5)
    assert seen == [] and [name for name, _ in docs] == ["start", "stop"]
    assert "sample" not in docs[0][1]


def test_a_blocked_loop_gives_engine_busy_and_withdraws_the_request(RE, docs):
    """No control call blocks for ever, and none returns before its outcome is known."""
    RE.control_timeout = 0.2
    release = threading.Event()

    def plan():
        yield Msg("checkpoint")
        release.wait(5)  # blocks the loop thread, as a misbehaving plan would
        yield Msg("null")

    thread = threading.Thread(target=RE, args=(plan(),))
    thread.start()
    time.sleep(0.1)
    with pytest.raises(EngineBusy, match="withdrawn: nothing changed"):
        RE.request_pause()
    with pytest.raises(EngineBusy, match="withdrawn"):
        RE.abort("too late")
    release.set()
    thread.join(5)
    assert RE.state == "idle"  # neither the pause nor the abort happened later
    assert stop_docs(docs) == []  # (a raw plan without a run)


def test_a_panic_on_a_blocked_loop_stays_queued_and_says_so(RE):
    RE.control_timeout = 0.2
    release = threading.Event()
    ended = []

    def plan():
        yield Msg("checkpoint")
        release.wait(5)
        yield Msg("sleep", None, 1)

    def run():
        try:
            RE(plan())
        except RunEngineInterrupted:
            ended.append("interrupted")

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(0.1)
    with pytest.raises(EngineBusy, match="stays queued"):
        RE.panic()
    release.set()
    thread.join(5)
    assert ended == ["interrupted"] and RE.state == "panicked"
    RE.all_is_well()
    assert RE.state == "idle"


@pytest.mark.parametrize("verb", ["stop", "abort", "halt"])
def test_panic_then_all_is_well_leaves_nothing_parked(RE, docs, verb):
    """Fixed: panic() + all_is_well() returned to idle but left the old plan parked."""
    with pytest.raises(RunEngineInterrupted):
        RE([Msg("open_run"), Msg("checkpoint"), Msg("pause"), Msg("close_run")])
    RE.panic()
    with pytest.raises(RuntimeError, match="panicked"):
        getattr(RE, verb)()
    RE.all_is_well()
    assert RE.state == "paused"
    getattr(RE, verb)()
    assert RE.state == "idle" and len(stop_docs(docs)) == 1
    assert RE([Msg("null")]) == ()


def test_a_stronger_ending_overtakes_a_weaker_one_under_way(RE, docs):
    """A stop whose cleanup hangs can still be halted; bluesky raises TransitionError."""
    from bluesky import preprocessors as bpp

    def cleanup():
        yield Msg("sleep", None, 30)  # a cleanup that would take for ever

    def body():
        yield Msg("open_run")
        yield Msg("checkpoint")
        yield Msg("pause")
        yield Msg("close_run")

    plan = bpp.finalize_wrapper(body(), cleanup())
    with pytest.raises(RunEngineInterrupted):
        RE(plan)
    stopper = threading.Thread(target=RE.stop)
    stopper.start()
    wait_for_state(RE, "stopping")
    with pytest.raises(TransitionError, match="already stopping"):
        RE.stop()
    RE.halt()  # from another thread than the one blocked in stop()
    stopper.join(5)
    assert RE.state == "idle" and stop_docs(docs)[-1]["exit_status"] == "abort"


class _DropsAsTheBeamDumps(SynGauss):
    """A detector whose first trigger times out just as a suspender trips (an IOC dying)."""

    triggers = -1  # SynGauss triggers itself once in __init__
    _beam = None

    def __init__(self, *args, beam, **kwargs):
        super().__init__(*args, **kwargs)
        self._beam = beam
        self.triggers = 0

    def trigger(self):
        self.triggers += 1
        if self.triggers == 2:
            self._beam.put(1)
            threading.Timer(0.1, self._beam.put, [0]).start()
            raise TimeoutError("det: connection timed out")
        return super().trigger()


@pytest.mark.parametrize("engine", ["bluesky", "runengine"])
def test_an_error_cut_short_by_a_suspension_is_decided_by_the_replay(engine):
    """Fixed: the old error was thrown into the plan after the suspension and a good replay,
    failing the run. bluesky fails the run too; ours records every point once."""
    beam = Signal(name="beam", value=0)
    motor = SynAxis(name="motor")
    det = _DropsAsTheBeamDumps("det", motor, "motor", center=0, Imax=1, sigma=1, beam=beam)
    RE = (BlueskyRunEngine if engine == "bluesky" else RunEngine)({}, context_managers=[])
    RE.install_suspender(SuspendBoolHigh(beam, sleep=0.05))
    docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    plan = bp.scan([det], motor, 0, 4, 5)
    if engine == "bluesky":
        with pytest.raises(TimeoutError):
            RE(plan)
        assert stop_docs(docs)[-1]["exit_status"] == "fail"
        return
    RE(plan)
    events = [doc for name, doc in docs if name == "event"]
    assert [e["seq_num"] for e in events] == [1, 2, 3, 4, 5]
    assert [e["data"]["motor"] for e in events] == [0, 1, 2, 3, 4]
    assert stop_docs(docs)[-1]["exit_status"] == "success"
    assert det.triggers == 6  # the one that raised was replayed


@pytest.mark.parametrize("engine", ["bluesky", "runengine"])
@pytest.mark.parametrize("defer", [False, True])
def test_a_second_pause_of_a_paused_plan_is_refused(engine, defer):
    """As in bluesky: pausing a paused plan raises TransitionError naming the state, and it
    stays paused (bluesky's SigintHandler relies on it: a third press is refused)."""
    RE = (BlueskyRunEngine if engine == "bluesky" else RunEngine)({}, context_managers=[])
    with pytest.raises(RunEngineInterrupted):
        RE([Msg("checkpoint"), Msg("pause"), Msg("null")])
    with pytest.raises(TransitionError, match="paused"):
        RE.request_pause(defer=defer)
    assert RE.state == "paused"
    RE.resume()
    assert RE.state == "idle"


def test_a_named_pause_of_a_paused_plan_holds_the_resume(RE):
    """Ours only: a named request while paused is not refused; it holds the resume until its
    callback allows (a file agent that sees the plan paused by someone else does this)."""
    with pytest.raises(RunEngineInterrupted):
        RE([Msg("checkpoint"), Msg("pause"), Msg("null")])
    allowed = False
    RE.request_pause(name="door", callback=lambda: allowed)
    assert RE.resume() == ["door"] and RE.state == "paused"
    allowed = True
    RE.resume()
    assert RE.state == "idle"


def test_an_error_of_a_message_not_replayed_still_stands(RE, docs):
    """Only a replayed message is forgiven: an uncached one's error fails the plan."""
    beam = Signal(name="beam", value=0)
    RE.install_suspender(SuspendBoolHigh(beam, sleep=0.01))

    class StageFails:
        name = "stager"

        def stage(self):
            beam.put(1)
            threading.Timer(0.05, beam.put, [0]).start()
            raise ValueError("stager: cannot stage")

        def unstage(self):
            return []

    with pytest.raises(ValueError, match="cannot stage"):
        RE([Msg("open_run"), Msg("checkpoint"), Msg("stage", StageFails()), Msg("close_run")])
    assert stop_docs(docs)[-1]["exit_status"] == "fail"


def test_queueservers_private_entry_points(RE):
    """bluesky-queueserver's worker pauses with RE._request_pause_coro on RE.loop and reads
    RE._deferred_pause_requested: both are supported API."""
    import asyncio

    pauses = []

    def plan():
        yield Msg("checkpoint")
        future = asyncio.run_coroutine_threadsafe(RE._request_pause_coro(True), RE.loop)
        pauses.append(future)
        yield Msg("sleep", None, 0.05)
        pauses.append(RE._deferred_pause_requested)
        yield Msg("checkpoint")
        yield Msg("null")

    with pytest.raises(RunEngineInterrupted):
        RE(plan())
    assert pauses[1] is True and RE.state == "paused" and not RE._deferred_pause_requested
    assert pauses[0].result(1) is None
    RE.resume()
    refused = asyncio.run_coroutine_threadsafe(RE._request_pause_coro(False), RE.loop)
    with pytest.raises(TransitionError, match="idle"):
        refused.result(1)


def test_an_abort_during_the_replay_of_an_open_bundle_still_drops_cleanly(RE, docs):
    """Found by the interleaving test: paused inside an event bundle, resumed, then aborted
    before the replay re-opened the bundle. The plan's contingency drops the bundle it
    believes open; the rewind had closed it already, so 'drop' raised IllegalMessageSequence
    and the run failed instead of aborting."""
    det = SynGauss("det", SynAxis(name="m"), "m", center=0, Imax=1)
    triggers = []

    def hook(msg):
        if msg.command == "trigger":
            triggers.append(msg)
            if len(triggers) == 1:  # the replay's first message
                RE.abort("during the replay")

    def plan():
        yield Msg("open_run")
        yield Msg("checkpoint")
        yield Msg("trigger", det)
        yield Msg("create", name="primary")
        try:
            yield Msg("read", det)
            yield Msg("pause")
        except BaseException:
            yield Msg("drop")
            raise
        yield Msg("save")
        yield Msg("close_run")

    with pytest.raises(RunEngineInterrupted):
        RE(plan())
    RE.msg_hook = hook
    with pytest.raises(RunEngineInterrupted):
        RE.resume()
    RE.msg_hook = None
    assert RE.state == "idle" and len(triggers) == 1
    assert stop_docs(docs)[-1]["exit_status"] == "abort"
    assert stop_docs(docs)[-1]["reason"] == "during the replay"
