"""Pause, resume, stop, abort, halt and panic: the basics (property tests live elsewhere)."""

import time

import pytest
from bluesky import plan_stubs as bps
from bluesky import plans as bp
from bluesky import preprocessors as bpp
from bluesky.utils import Msg
from ophyd.sim import SynAxis, SynGauss

from runengine import RunEngine, RunEngineInterrupted, TransitionError
from tests.timing import later


@pytest.fixture
def devices():
    motor = SynAxis(name="motor")
    det = SynGauss("det", motor, "motor", center=0, Imax=1, sigma=1)
    return motor, det


def wait_for_state(RE, name, timeout=5):
    deadline = time.monotonic() + timeout
    while RE.state != name:
        assert time.monotonic() < deadline, f"state stayed {RE.state}, wanted {name}"
        time.sleep(0.005)


def events(docs):
    return [d for n, d in docs if n == "event"]


def test_planned_pause_then_resume_follows_the_state_table(RE):
    states = []
    RE.state_hook = lambda new, old: states.append((new, old))
    with pytest.raises(RunEngineInterrupted):
        RE([Msg("open_run"), Msg("checkpoint"), Msg("pause"), Msg("close_run")])
    assert RE.state == "paused"
    RE.resume()
    assert RE.state == "idle"
    assert states == [
        ("running", "idle"),
        ("pausing", "running"),
        ("paused", "pausing"),
        ("running", "paused"),
        ("idle", "running"),
    ]


def test_immediate_pause_during_a_sleep_replays_from_the_checkpoint(RE, docs, devices):
    motor, det = devices

    def plan():
        yield from bps.open_run()
        for x in range(3):
            yield from bps.checkpoint()
            yield from bps.mv(motor, x)
            yield from bps.sleep(0.3 if x == 1 else 0)
            yield from bps.trigger_and_read([det, motor])
        yield from bps.close_run()

    msgs = []
    RE.msg_hook = lambda msg: msgs.append(msg.command)
    later(0.15, RE.request_pause)
    with pytest.raises(RunEngineInterrupted):
        RE(plan())
    assert RE.state == "paused"
    RE.resume()
    evs = events(docs)
    assert [e["seq_num"] for e in evs] == [1, 2, 3]
    assert [e["data"]["motor"] for e in evs] == [0, 1, 2]
    assert msgs.count("sleep") == 4  # the cut-short sleep was replayed
    assert docs[-1][1]["exit_status"] == "success"


def test_deferred_pause_waits_for_a_checkpoint(RE, docs, devices):
    det = devices[1]

    def plan():
        yield from bps.open_run()
        yield from bps.sleep(0.2)  # the request arrives here, before any new checkpoint
        yield from bps.trigger_and_read([det])
        yield from bps.checkpoint()
        yield from bps.trigger_and_read([det])
        yield from bps.close_run()

    later(0.05, RE.request_pause, True)
    with pytest.raises(RunEngineInterrupted):
        RE(plan())
    assert len(events(docs)) == 1  # paused at the checkpoint, after the first event
    RE.resume()
    assert [e["seq_num"] for e in events(docs)] == [1, 2]


def test_named_pause_request_blocks_resume_until_its_callback_allows(RE, capsys):
    permission = {"ok": False}
    later(0.1, RE.request_pause, False, "beam-watch", lambda: permission["ok"])
    with pytest.raises(RunEngineInterrupted):
        RE(bps.repeat(lambda: (yield from bps.checkpoint()) or (yield from bps.sleep(0.02)), 100))
    assert RE.state == "paused"
    assert RE.resume() == ["beam-watch"]
    assert "beam-watch" in capsys.readouterr().out
    assert RE.state == "paused"
    permission["ok"] = True
    RE.resume()
    assert RE.state == "idle"


def test_hard_keyword_is_not_defer(RE):
    later(0.1, lambda: RE.request_pause(hard=True), engine=RE)
    with pytest.raises(RunEngineInterrupted):
        RE([Msg("checkpoint"), Msg("sleep", None, 5), Msg("null")])
    assert RE.state == "paused"
    RE.stop()


@pytest.mark.parametrize(
    ("verb", "status", "reason"),
    [("stop", "success", ""), ("abort", "abort", "beam lost"), ("halt", "abort", "")],
)
def test_stop_abort_halt_from_paused(RE, docs, devices, verb, status, reason):
    det = devices[1]

    def plan():
        yield from bps.open_run()
        yield from bps.checkpoint()
        yield from bps.trigger_and_read([det])
        yield from bps.pause()
        yield from bps.trigger_and_read([det])
        yield from bps.close_run()

    with pytest.raises(RunEngineInterrupted):
        RE(plan())
    args = (reason,) if verb == "abort" else ()
    getattr(RE, verb)(*args)
    assert RE.state == "idle"
    stop = docs[-1][1]
    assert docs[-1][0] == "stop"
    assert stop["exit_status"] == status
    assert stop["reason"] == reason
    assert len(events(docs)) == 1


def test_abort_from_another_thread_while_running(RE, docs, devices):
    det = devices[1]
    later(0.15, RE.abort, "operator said so")
    with pytest.raises(RunEngineInterrupted):
        RE(bp.count([det], 100, delay=0.02))
    assert RE.state == "idle"
    stop = docs[-1][1]
    assert stop["exit_status"] == "abort"
    assert stop["reason"] == "operator said so"
    n = len(events(docs))
    assert 0 < n < 100 and stop["num_events"]["primary"] == n


@pytest.mark.parametrize(("verb", "cleaned"), [("halt", []), ("stop", ["ran"]), ("abort", ["ran"])])
def test_only_halt_skips_plan_cleanup(RE, verb, cleaned):
    cleanup = []

    def plan():
        yield from bps.checkpoint()
        yield from bps.sleep(5)

    def cleanup_plan():
        cleanup.append("ran")
        yield from bps.null()

    later(0.1, getattr(RE, verb))
    with pytest.raises(RunEngineInterrupted):
        RE(bpp.finalize_wrapper(plan(), cleanup_plan()))
    assert cleanup == cleaned
    assert RE.state == "idle"


def test_pause_without_a_checkpoint_aborts(RE, docs):
    with pytest.raises(RunEngineInterrupted):
        RE([Msg("open_run"), Msg("clear_checkpoint"), Msg("pause"), Msg("close_run")])
    assert RE.state == "idle"
    assert docs[-1][1]["exit_status"] == "abort"


def test_request_pause_from_inside_a_plan_does_not_deadlock(RE):
    def plan():
        yield Msg("checkpoint")
        RE.request_pause()
        yield Msg("null")

    with pytest.raises(RunEngineInterrupted):
        RE(plan())
    assert RE.state == "paused"
    RE.resume()


def test_control_verbs_from_idle_raise(RE):
    for verb in (RE.resume, RE.stop, RE.abort, RE.halt):
        with pytest.raises(TransitionError):
            verb()
    with pytest.raises(TransitionError):
        RE.request_pause()
    with pytest.raises(TransitionError):
        RE.request_pause(name="beam", callback=lambda: False)
    assert RE.pause_requests == ()  # a refused request leaves nothing behind to hold a resume


def test_panic_while_running_aborts_for_good_until_all_is_well(RE, docs, devices):
    det = devices[1]
    later(0.1, RE.panic)
    with pytest.raises(RunEngineInterrupted):
        RE(bp.count([det], 100, delay=0.02))
    assert RE.state == "panicked"
    assert docs[-1][1]["exit_status"] == "abort"
    with pytest.raises(RuntimeError, match="panicked"):
        RE(bp.count([det]))
    with pytest.raises(RuntimeError, match="panicked"):
        RE.resume()
    RE.all_is_well()
    assert RE.state == "idle"
    assert RE(bp.count([det]))


def test_panic_while_paused_can_resume_after_all_is_well(RE, docs):
    with pytest.raises(RunEngineInterrupted):
        RE([Msg("open_run"), Msg("checkpoint"), Msg("pause"), Msg("close_run")])
    RE.panic()
    assert RE.state == "panicked"
    with pytest.raises(RuntimeError, match="panicked"):
        RE.resume()
    RE.all_is_well()
    assert RE.state == "paused"
    RE.resume()
    assert RE.state == "idle"
    assert docs[-1][1]["exit_status"] == "success"


def test_a_group_nobody_waits_on_stays_small(RE, devices):
    motor = devices[0]
    sizes = []

    def plan():
        for i in range(2000):
            yield Msg("set", motor, i % 7)
        sizes.append(len(RE._exec.statuses.groups[None]))
        yield Msg("null")

    RE(plan())
    assert 0 < sizes[0] <= 257


def test_interruptions_stream_says_who_asked_and_why(RE, docs):
    from bluesky.suspenders import SuspendBoolHigh
    from ophyd import Signal

    RE.record_interruptions = True
    beam_off = Signal(name="beam_off", value=0)
    RE.install_suspender(SuspendBoolHigh(beam_off, sleep=0, tripped_message="beam dumped"))

    def plan():
        yield Msg("open_run")
        yield Msg("checkpoint")
        yield Msg("pause", name="sample-check")
        yield Msg("checkpoint")
        beam_off.put(1)
        later(0.2, beam_off.put, 0)
        yield Msg("sleep", None, 0.5)
        yield Msg("close_run")

    with pytest.raises(RunEngineInterrupted):
        RE(plan())
    RE.resume()
    RE.clear_suspenders()
    rows = [
        (d["data"]["interruption"], d["data"]["requested_by"])
        for d in events(docs)
        if "interruption" in d["data"]
    ]
    assert rows[0] == ("pause", "sample-check")
    assert rows[1] == ("resume", "")
    assert rows[2][1] == "suspender" and "beam dumped" in rows[2][0]
    assert [d["seq_num"] for d in events(docs)] == [1, 2, 3]


def test_resuming_does_not_duplicate_monitor_events(RE, docs):
    """bluesky PR #2074: a resume re-subscribes monitors, which called back with old data."""
    from ophyd import Signal

    sig = Signal(name="temperature", value=0.0)
    sig.put(1.0)  # now a subscription calls back at once with this reading

    def plan():
        yield Msg("open_run")
        yield Msg("monitor", sig, name="temps")
        yield Msg("checkpoint")
        yield Msg("pause")
        sig.put(2.0)
        yield Msg("checkpoint")
        yield Msg("pause")
        yield Msg("unmonitor", sig)
        yield Msg("close_run")

    with pytest.raises(RunEngineInterrupted):
        RE(plan())
    with pytest.raises(RunEngineInterrupted):
        RE.resume()
    RE.resume()
    values = [d["data"]["temperature"] for d in events(docs)]
    assert values == [1.0, 2.0]
    assert [d["seq_num"] for d in events(docs)] == [1, 2]


class PausableDetector:
    """A detector that must be told about pauses, and may refuse a replay."""

    name = "pdet"
    parent = None

    def __init__(self, refuse_replay=False):
        self.calls = []
        self.refuse_replay = refuse_replay

    def trigger(self):
        from ophyd.status import Status

        self.calls.append("trigger")
        return Status(done=True, success=True)

    def read(self):
        return {"pdet": {"value": len(self.calls), "timestamp": 0.0}}

    def describe(self):
        return {"pdet": {"dtype": "number", "shape": [], "source": "test"}}

    def pause(self):
        from bluesky.utils import NoReplayAllowed

        self.calls.append("pause")
        if self.refuse_replay:
            raise NoReplayAllowed()

    def resume(self):
        self.calls.append("resume")


@pytest.mark.parametrize("refuse", [False, True], ids=["replay", "no-replay"])
def test_pausable_devices_are_told_and_may_refuse_the_replay(RE, refuse):
    det = PausableDetector(refuse_replay=refuse)
    with pytest.raises(RunEngineInterrupted):
        RE([Msg("checkpoint"), Msg("trigger", det), Msg("pause"), Msg("null")])
    RE.resume()
    expected = ["trigger", "pause", "resume"] + ([] if refuse else ["trigger"])
    assert det.calls == expected


@pytest.mark.parametrize("rewindable", [True, False])
def test_a_pause_before_the_first_checkpoint_pauses_as_in_bluesky(rewindable):
    """Paused before any checkpoint: paused, and the resume replays from the plan's start (or
    goes on in place when not rewindable). Same messages, states and stops on both engines."""
    from bluesky import RunEngine as BlueskyRunEngine

    outcomes = []
    for engine in (BlueskyRunEngine({}, context_managers=[]), RunEngine({}, context_managers=[])):
        engine.rewindable = rewindable
        commands, stops, states = [], [], []
        engine.msg_hook = lambda msg, commands=commands: commands.append(msg.command)
        engine.state_hook = lambda new, old, states=states: states.append(str(new))
        engine.subscribe(lambda name, doc, stops=stops: stops.append(doc["exit_status"]), "stop")
        plan = [Msg("open_run"), Msg("null"), Msg("pause"), Msg("null"), Msg("close_run")]
        with pytest.raises(RunEngineInterrupted):
            engine(plan)
        paused = str(engine.state)
        engine.resume()
        outcomes.append((paused, commands, states, stops))
    assert outcomes[0][0] == "paused"
    assert outcomes[1] == outcomes[0]


def test_a_point_emitted_before_the_pause_is_not_emitted_again(RE, docs, devices):
    """Paused between a save and the next checkpoint: the replay re-takes the point, and
    bluesky emits its event a second time with the same seq_num. We emit it once."""
    motor, det = devices

    def plan():
        yield from bps.open_run()
        for x in range(3):
            yield from bps.checkpoint()
            yield from bps.mv(motor, x)
            yield from bps.trigger_and_read([det, motor])
            if x == 1:
                yield from bps.pause()  # after the save, before the next checkpoint
        yield from bps.close_run()

    with pytest.raises(RunEngineInterrupted):
        RE(plan())
    RE.resume()
    evs = events(docs)
    assert [e["seq_num"] for e in evs] == [1, 2, 3]
    assert [e["data"]["motor"] for e in evs] == [0, 1, 2]
    assert docs[-1][1]["num_events"] == {"primary": 3}
