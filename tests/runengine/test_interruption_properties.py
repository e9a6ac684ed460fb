"""Interruptions are correct by construction (design principle 5), as properties.

Pausing or suspending a plan at ANY message and resuming it gives the same documents as an
uninterrupted run: the same events per stream, seq_nums 1..N with no duplicate and no gap, the
same data (devices are deterministic ``ophyd.sim`` ones), one descriptor per stream, one start
and one stop with exit_status 'success'. Every document is validated against event-model's
schemas.

A run is driven by :func:`drive`: a ``msg_hook`` counts the messages as the engine processes
them (replayed and internal suspension messages included) and, when the count reaches an index,
performs an interruption on the loop thread:

* ``pause``: ``RE.request_pause(defer=False)``; the pause happens once that message is done;
* ``defer``: ``RE.request_pause(defer=True)``; the pause happens at the next checkpoint;
* ``suspend``: ``RE.request_suspend(factory)`` with a short sleep as the awaitable;
* ``trip``: a bluesky ``SuspendBoolHigh`` on an ``ophyd.Signal`` is tripped, and released from a
  ``threading.Timer`` shortly after (the trip lands when the engine next lets the loop run).

The driver resumes whenever the engine pauses. A pause or suspension with no checkpoint to
return to (none reached yet in the call, the seed's rule, or after ``clear_checkpoint``) turns
into an abort: then the run must be closed and keep, unchanged, the events taken before.

The last tests are minimal reproductions of the engine bugs these properties found (fixed).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from bluesky import plan_stubs as bps
from bluesky import plans as bp
from bluesky import preprocessors as bpp
from bluesky.suspenders import SuspendBoolHigh
from bluesky.utils import Msg
from cycler import cycler
from event_model import DocumentNames, schema_validators
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ophyd import Signal
from ophyd.ophydobj import OphydObject
from ophyd.sim import SynAxis, SynGauss

from runengine import RunEngine, RunEngineInterrupted, TransitionError

KINDS = ("pause", "defer", "suspend", "trip")
SUSPENSION = "suspension for the property tests"  # request_suspend's justification


# ---- hardware and plans -------------------------------------------------------------------
def make_hw() -> SimpleNamespace:
    """Fresh, deterministic sim devices (noise='none', no motion delay)."""
    motor = SynAxis(name="motor")
    motor1 = SynAxis(name="motor1")
    motor2 = SynAxis(name="motor2")
    return SimpleNamespace(
        motor=motor,
        motor1=motor1,
        motor2=motor2,
        det=SynGauss("det", motor, "motor", center=0, Imax=1, sigma=1, noise="none"),
        det1=SynGauss("det1", motor1, "motor1", center=0.5, Imax=2, sigma=1, noise="none"),
        level=Signal(name="level", value=3),
        ramp_motor=SynAxis(name="ramp_motor", delay=0.03, events_per_move=3),
    )


def baseline_scan(hw):
    @bpp.baseline_decorator([hw.motor2])
    def plan():
        return (yield from bp.scan([hw.det], hw.motor, -1, 1, 2))

    return plan()


def monitored_count(hw):
    @bpp.monitor_during_decorator([hw.level])
    def plan():
        return (yield from bp.count([hw.det], num=2))

    return plan()


def relative_list_scan(hw):
    hw.motor.set(0.5)
    return bpp.relative_set_wrapper(bp.list_scan([hw.det], hw.motor, [0.5, 1]), [hw.motor])


def _unresumable_points(hw):
    for i, x in enumerate((-1, 0, 1)):
        if i == 2:
            yield from bps.clear_checkpoint()
        yield from bps.checkpoint()
        yield from bps.mv(hw.motor, x)
        yield from bps.trigger_and_read([hw.det, hw.motor])


def unresumable_tail(hw):
    """Two points, then ``clear_checkpoint``: from there on a pause must become an abort."""
    return bpp.run_wrapper(_unresumable_points(hw), md={"plan_name": "unresumable_tail"})


def unresumable_tail_raw(hw):
    """The same without run_wrapper: the engine closes the run when the plan gives up."""
    yield Msg("open_run", plan_name="unresumable_tail_raw")
    yield from _unresumable_points(hw)
    yield Msg("close_run")


def ramp(hw):
    def go():
        return (yield from bps.abs_set(hw.ramp_motor, 1, wait=False))

    return bp.ramp_plan(
        go(),
        hw.ramp_motor.readback,
        lambda: bps.trigger_and_read([hw.det, hw.ramp_motor]),
        period=0.01,
    )


PLANS: dict[str, Callable[[SimpleNamespace], Any]] = {
    "count": lambda hw: bp.count([hw.det], num=3),
    "scan": lambda hw: bp.scan([hw.det], hw.motor, -1, 1, 3),
    "rel_scan": lambda hw: bp.rel_scan([hw.det], hw.motor, -1, 1, 3),
    "list_scan": lambda hw: bp.list_scan([hw.det], hw.motor, [1, 2, 3]),
    "grid_scan": lambda hw: bp.grid_scan(
        [hw.det, hw.det1], hw.motor, -1, 1, 2, hw.motor1, -1, 1, 2, snake_axes=False
    ),
    "grid_scan_snake": lambda hw: bp.grid_scan(
        [hw.det, hw.det1], hw.motor, -1, 1, 2, hw.motor1, -1, 1, 2, snake_axes=True
    ),
    "scan_nd": lambda hw: bp.scan_nd(
        [hw.det, hw.det1], cycler(hw.motor, [1, 2, 3]) + cycler(hw.motor1, [4, 5, 6])
    ),
    "spiral": lambda hw: bp.spiral([hw.det], hw.motor, hw.motor1, 0, 0, 1, 1, 0.5, 3),
    "log_scan": lambda hw: bp.log_scan([hw.det], hw.motor, 0, 2, 3),
    "adaptive_scan": lambda hw: bp.adaptive_scan(
        [hw.det], "det", hw.motor, -1, 1, 0.5, 1, 0.2, True
    ),
    "tune_centroid": lambda hw: bp.tune_centroid([hw.det], "det", hw.motor, -2, 2, 0.5, num=3),
    "baseline_decorator": baseline_scan,
    "monitor_during_decorator": monitored_count,
    "relative_set_wrapper": relative_list_scan,
}
# Not in PLANS: plans that cannot always be resumed, and one whose length depends on time.
ALL_PLANS = {
    **PLANS,
    "unresumable_tail": unresumable_tail,
    "unresumable_tail_raw": unresumable_tail_raw,
    "ramp_plan": ramp,
}
# Small plans that are interrupted at every one of their messages.
EXHAUSTIVE = (
    "count",
    "scan",
    "rel_scan",
    "grid_scan_snake",
    "baseline_decorator",
    "monitor_during_decorator",
    "relative_set_wrapper",
)


# ---- the engine and the driver ------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def _hash_by_name():
    """bluesky iterates over sets of motors (``cycler.keys``): the order of their messages, hence
    the message indices, would follow ``id()``. Here ophyd objects hash by name instead."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(OphydObject, "__hash__", lambda self: hash(self.name))
        yield


@pytest.fixture(scope="module")
def RE():
    engine = RunEngine({}, context_managers=[])
    yield engine
    engine.clear_suspenders()
    if not engine.state.is_idle:
        engine.halt()


@dataclass
class Outcome:
    docs: list[tuple[str, dict]] = field(default_factory=list)
    msgs: list[str] = field(default_factory=list)
    pauses: int = 0  # how often the engine paused (and was resumed)
    aborted: bool = False  # an interruption ended the call: a pause or suspension that the
    # engine could not resume, so it aborted instead (RunEngineInterrupted, engine idle)
    unresumable: list[bool] = field(default_factory=list)  # at each abort: no checkpoint
    timeline: list[str] = field(default_factory=list)  # interruptions while a run was open
    requested_in_run: list[tuple[int, str, str]] = field(default_factory=list)  # i, kind, cmd

    def of(self, name: str) -> list[dict]:
        return [doc for n, doc in self.docs if n == name]


def drive(RE, plan_name: str, actions: dict[int, str] | None = None) -> Outcome:
    """Run the plan on fresh devices; do ``actions[i]`` at the i-th message; resume pauses."""
    actions = actions or {}
    hw = make_hw()
    out = Outcome()
    beam = Signal(name="beam", value=0)
    suspender = SuspendBoolHigh(beam, sleep=0)
    timers: list[threading.Timer] = []
    run_open = [False]

    def collect(name, doc):
        out.docs.append((name, doc))
        if name in ("start", "stop"):
            run_open[0] = name == "start"

    def msg_hook(msg):
        out.msgs.append(msg.command)
        if msg.command == "_start_suspender" and run_open[0]:
            out.timeline.append(msg.args[2] or "suspended")
        if msg.command in ("_start_suspender", "wait_for") and beam.get():
            # The trip has landed (a suspension of its own, or one already under way now
            # waits on it too): the beam comes back a little later.
            timer = threading.Timer(0.005, beam.put, [0])
            timers.append(timer)
            timer.start()
        kind = actions.get(len(out.msgs) - 1)
        if kind is not None and run_open[0]:
            out.requested_in_run.append((len(out.msgs) - 1, kind, msg.command))
        if kind in ("pause", "defer"):
            try:
                RE.request_pause(defer=kind == "defer")
            except TransitionError:
                # already ending: the plan's cleanup after an abort runs through the hook too
                assert RE.state in ("aborting", "stopping", "halting"), RE.state
        elif kind == "suspend":
            RE.request_suspend(lambda: asyncio.sleep(0.002), justification=SUSPENSION)
        elif kind == "trip":
            beam.put(1)  # lands when the engine next lets its loop run; cleared once it has

    def state_hook(new, old):
        if run_open[0] and new == "paused":
            out.timeline.append("pause")
        elif run_open[0] and new == "running" and old == "paused":
            out.timeline.append("resume")
        elif new == "aborting":
            out.unresumable.append(not RE.resumable)

    token = RE.subscribe(collect)
    RE.install_suspender(suspender)
    RE.msg_hook, RE.state_hook = msg_hook, state_hook
    try:
        try:
            RE(ALL_PLANS[plan_name](hw))
            interrupted = False
        except RunEngineInterrupted:
            interrupted = True
        while interrupted and RE.state.is_paused:
            out.pauses += 1
            try:
                RE.resume()
                interrupted = False
            except RunEngineInterrupted:
                pass
        out.aborted = interrupted
        assert RE.state == "idle"
    finally:
        RE.msg_hook = RE.state_hook = None
        RE.unsubscribe(token)
        for timer in timers:
            timer.join()
        RE.remove_suspender(suspender)
        beam.put(0)  # a trip the plan ended before hearing
    return out


_REFERENCES: dict[str, Outcome] = {}


def reference(RE, plan_name: str) -> Outcome:
    """The uninterrupted run (computed once per plan)."""
    if plan_name not in _REFERENCES:
        ref = drive(RE, plan_name)
        assert ref.pauses == 0 and not ref.aborted
        check_documents(ref)
        _REFERENCES[plan_name] = ref
    return _REFERENCES[plan_name]


# ---- what must hold ------------------------------------------------------------------------
# Messages whose handling makes a checkpoint, explicit or implicit (spec/engine.md §3.5; our
# engine adds close_run): a resume returns to the last one, or to the start of the call.
CHECKPOINTS = frozenset(
    {"checkpoint", "stage", "unstage", "subscribe", "unsubscribe", "monitor", "unmonitor"}
    | {"close_run"}
)


def validate(docs: list[tuple[str, dict]]) -> None:
    for name, doc in docs:
        schema_validators[DocumentNames[name]].validate(doc)


def streams(out: Outcome) -> dict[str, list[dict]]:
    """Events by stream name, in order."""
    names = {d["uid"]: d["name"] for d in out.of("descriptor")}
    by_stream: dict[str, list[dict]] = {}
    for event in out.of("event"):
        by_stream.setdefault(names[event["descriptor"]], []).append(event)
    return by_stream


def check_documents(out: Outcome, exit_status: str | tuple = "success") -> None:
    """Well-formed on its own: valid, one start and one stop, seq_nums 1..N per stream."""
    validate(out.docs)
    names = [name for name, _ in out.docs]
    assert names.count("start") == 1 and names[0] == "start", names
    assert names.count("stop") == 1 and names[-1] == "stop", names
    start, stop = out.of("start")[0], out.of("stop")[0]
    assert stop["run_start"] == start["uid"]
    allowed = (exit_status,) if isinstance(exit_status, str) else exit_status
    assert stop["exit_status"] in allowed, stop
    descriptors = [d["name"] for d in out.of("descriptor")]
    assert len(descriptors) == len(set(descriptors)), f"descriptor repeated: {descriptors}"
    assert all(d["run_start"] == start["uid"] for d in out.of("descriptor"))
    by_stream = streams(out)
    for name, events in by_stream.items():
        seq_nums = [e["seq_num"] for e in events]
        assert seq_nums == list(range(1, len(events) + 1)), f"{name}: seq_nums {seq_nums}"
    counted = {name: n for name, n in stop["num_events"].items() if n}
    assert counted == {name: len(events) for name, events in by_stream.items()}, stop


def same_value(a: Any, b: Any) -> bool:
    if isinstance(a, int | float | np.number) and isinstance(b, int | float | np.number):
        # a replayed move starts where the motor already is: 1-ulp differences in readbacks
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return bool(np.all(a == b))


def assert_same_events(name: str, ref_events: list[dict], events: list[dict]) -> None:
    for ref_event, event in zip(ref_events, events, strict=False):  # a prefix after an abort
        assert event["seq_num"] == ref_event["seq_num"]
        assert event["data"].keys() == ref_event["data"].keys()
        for key, value in ref_event["data"].items():
            got = event["data"][key]
            assert same_value(got, value), f"{name} #{event['seq_num']} {key}: {got} != {value}"


def assert_same_data(ref: Outcome, out: Outcome, *, skip=("interruptions",)) -> None:
    """The same events as the uninterrupted run, stream by stream, value by value."""
    check_documents(out)
    ref_streams = streams(ref)
    got_streams = {name: evs for name, evs in streams(out).items() if name not in skip}
    assert sorted(got_streams) == sorted(ref_streams)
    for name, ref_events in ref_streams.items():
        events = got_streams[name]
        assert len(events) == len(ref_events), f"{name}: {len(events)} != {len(ref_events)}"
        assert_same_events(name, ref_events, events)
    ref_desc = {d["name"]: d for d in ref.of("descriptor")}
    for desc in out.of("descriptor"):
        if desc["name"] not in skip:
            assert desc["data_keys"] == ref_desc[desc["name"]]["data_keys"]


def assert_kept_before_abort(ref: Outcome, out: Outcome, exit_status: str | tuple) -> None:
    """An abort keeps what was taken: a prefix of the full run's events, run closed."""
    assert out.aborted and out.unresumable and all(out.unresumable), out.unresumable
    if not out.docs:
        return  # aborted before the run was opened
    check_documents(out, exit_status)
    ref_streams = streams(ref)
    for name, events in streams(out).items():
        if name != "interruptions":
            assert len(events) <= len(ref_streams[name])
            assert_same_events(name, ref_streams[name], events)


def aborts(msgs: list[str], i: int, kind: str) -> bool:
    """Whether ``kind`` at message ``i`` finds no checkpoint to return to: ``clear_checkpoint``
    handled (sticky; the start of the call is a checkpoint, as in bluesky). A pause is acted
    on once message ``i`` is handled, a suspension when requested (the hook runs before the
    handler), a deferred pause at the next 'checkpoint' (message ``i`` included)."""
    cleared = msgs.index("clear_checkpoint") if "clear_checkpoint" in msgs else len(msgs)
    if kind == "pause":
        return i >= cleared
    if kind == "suspend":
        return i > cleared
    ahead = [j for j in range(i, len(msgs)) if msgs[j] == "checkpoint"]
    return bool(ahead) and ahead[0] > cleared


def check_interrupted(RE, plan_name: str, actions: dict[int, str]) -> Outcome:
    """Interrupt as told: the same data as the uninterrupted run, or, only where there was
    no checkpoint to return to, an abort that kept what was taken."""
    ref = reference(RE, plan_name)
    out = drive(RE, plan_name, actions)
    if out.aborted:
        assert_kept_before_abort(ref, out, ("abort", "fail"))
    else:
        assert_same_data(ref, out)
    return out


# ---- 1. a pause at every message --------------------------------------------------------------
@pytest.mark.parametrize("kind", ["pause", "defer"])
@pytest.mark.parametrize("plan_name", EXHAUSTIVE)
def test_pause_at_every_message_then_resume_gives_the_same_data(RE, plan_name, kind):
    ref = reference(RE, plan_name)
    for i in range(len(ref.msgs)):
        out = check_interrupted(RE, plan_name, {i: kind})
        assert out.msgs[: i + 1] == ref.msgs[: i + 1]
        assert not out.aborted, f"{plan_name} index {i} ({ref.msgs[i]})"
        # an immediate pause always happens; a deferred one at the next checkpoint (this
        # message included: the hook runs before the handler), if there is one
        expected = kind == "pause" or "checkpoint" in ref.msgs[i:]
        assert out.pauses == expected, f"{plan_name} index {i} ({ref.msgs[i]})"


SETTINGS = settings(
    max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "60")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@SETTINGS
@given(data=st.data())
def test_one_pause_or_suspension_anywhere_in_any_plan(RE, data):
    plan_name = data.draw(st.sampled_from(sorted(PLANS)), label="plan")
    ref = reference(RE, plan_name)
    index = data.draw(st.integers(0, len(ref.msgs) - 1), label="index")
    kind = data.draw(st.sampled_from(KINDS), label="kind")
    out = check_interrupted(RE, plan_name, {index: kind})
    if kind != "trip":
        assert out.aborted == aborts(ref.msgs, index, kind)


@SETTINGS
@given(data=st.data())
def test_several_interruptions_including_during_replays(RE, data):
    """Indices run past the plan's own length: later interruptions land in replays and in
    the messages of a suspension."""
    plan_name = data.draw(st.sampled_from(sorted(PLANS)), label="plan")
    ref = reference(RE, plan_name)
    actions = data.draw(
        st.dictionaries(
            st.integers(0, 2 * len(ref.msgs)), st.sampled_from(KINDS), min_size=2, max_size=4
        ),
        label="actions",
    )
    check_interrupted(RE, plan_name, actions)


# ---- a pause that cannot be resumed becomes an abort -----------------------------------------
@pytest.mark.parametrize("plan_name", ["unresumable_tail_raw", "unresumable_tail"])
def test_pause_with_no_checkpoint_to_return_to_aborts_and_keeps_what_was_taken(RE, plan_name):
    """Every pause, deferred pause and suspension, at every message of a plan that reaches its
    first checkpoint after open_run and clears it before its last point.

    The stop says 'abort', whether the engine or bluesky's run_wrapper closes the run.
    """
    ref = reference(RE, plan_name)
    closed = ref.msgs.index("close_run")
    count = 0
    for i in range(len(ref.msgs)):
        for kind in ("pause", "defer", "suspend"):
            out = drive(RE, plan_name, {i: kind})
            assert out.aborted == aborts(ref.msgs, i, kind), (i, ref.msgs[i], kind)
            if not out.aborted:
                assert_same_data(ref, out)
                continue
            count += 1
            where = i if kind != "defer" else ref.msgs.index("checkpoint", i)
            status = "success" if where >= closed else "abort"  # closed before the abort?
            assert_kept_before_abort(ref, out, status)
    # immediate pauses from clear_checkpoint on (12), suspensions after clear_checkpoint (11),
    # deferred pauses answered at the checkpoint after clear_checkpoint (11); before the first
    # checkpoint they pause and replay from the start, as in bluesky
    assert count == 34


def test_unresumable_pause_inside_run_wrapper_closes_the_run_with_abort(RE):
    """bluesky throws a bare FailedPause here and run_wrapper records 'fail'; ours is an abort."""
    ref = reference(RE, "unresumable_tail")
    out = drive(RE, "unresumable_tail", {ref.msgs.index("clear_checkpoint") + 2: "pause"})
    assert out.aborted
    assert out.of("stop")[0]["exit_status"] == "abort"


# ---- 2. suspensions at every message ------------------------------------------------------------
@pytest.mark.parametrize("plan_name", EXHAUSTIVE)
def test_request_suspend_at_every_message_gives_the_same_data(RE, plan_name):
    ref = reference(RE, plan_name)
    for i in range(len(ref.msgs)):
        out = check_interrupted(RE, plan_name, {i: "suspend"})
        assert out.aborted == aborts(ref.msgs, i, "suspend"), (i, ref.msgs[i])
        if not out.aborted:
            assert out.msgs[i + 1] == "_start_suspender", (i, out.msgs[i - 2 : i + 3])


@pytest.mark.parametrize("plan_name", ["scan", "grid_scan", "baseline_decorator"])
def test_suspender_tripped_at_every_message_gives_the_same_data(RE, plan_name):
    ref = reference(RE, plan_name)
    suspended = 0
    for i in range(len(ref.msgs)):
        out = check_interrupted(RE, plan_name, {i: "trip"})
        assert not out.aborted
        suspended += "_start_suspender" in out.msgs
    # a trip lands when the engine next lets the event loop run (a wait on a move, say)
    assert suspended > 0


# ---- ramp_plan: how many points depends on time, not on the interruption ------------------------
@settings(max_examples=10, deadline=None, database=None)
@given(index=st.integers(0, 40), kind=st.sampled_from(KINDS))
def test_ramp_plan_interrupted_keeps_its_documents_consistent(RE, index, kind):
    out = drive(RE, "ramp_plan", {index: kind})
    if out.aborted:  # no checkpoint before monitor (message 1, handled after the hook)
        assert (index == 0 or (index == 1 and kind == "suspend")) and all(out.unresumable)
        check_documents(out, "abort")
        return
    check_documents(out)
    assert {"primary", "ramp_motor_monitor"} <= set(streams(out))


# ---- 3. the interruptions stream ----------------------------------------------------------------
@contextlib.contextmanager
def recording_interruptions(RE):
    RE.record_interruptions = True
    try:
        yield RE
    finally:
        RE.record_interruptions = False


def interruptions(out: Outcome) -> list[str]:
    return [e["data"]["interruption"] for e in streams(out).get("interruptions", [])]


@pytest.mark.parametrize(
    ("actions", "expected"),
    [
        ({10: "pause"}, ["pause", "resume"]),
        ({10: "defer"}, ["pause", "resume"]),
        ({10: "pause", 30: "pause"}, ["pause", "resume", "pause", "resume"]),
        ({10: "suspend"}, [SUSPENSION]),
        ({10: "suspend", 30: "pause"}, [SUSPENSION, "pause", "resume"]),
        ({0: "pause"}, []),  # after stage, before open_run: no run to record it in
    ],
)
def test_interruptions_stream_records_pause_and_resume_in_order(RE, actions, expected):
    with recording_interruptions(RE):
        out = check_interrupted(RE, "scan", actions)
    assert interruptions(out) == expected == out.timeline
    assert out.pauses == len(actions) - list(actions.values()).count("suspend")


@settings(max_examples=40, deadline=None, database=None)
@given(actions=st.dictionaries(st.integers(0, 70), st.sampled_from(KINDS), min_size=1, max_size=4))
def test_interruptions_stream_follows_what_happened(RE, actions):
    with recording_interruptions(RE):
        out = check_interrupted(RE, "scan", actions)
    recorded = interruptions(out)
    assert recorded == out.timeline
    assert recorded.count("pause") == recorded.count("resume")
    for i, what in enumerate(recorded):
        if what == "resume":
            assert recorded[i - 1] == "pause"
    # what was asked while a run was open (and not closed by that very message) is there
    asked = {kind for _, kind, command in out.requested_in_run if command != "close_run"}
    if not out.aborted:
        assert ("pause" in asked) <= ("pause" in recorded)
        assert ("suspend" in asked) <= (SUSPENSION in recorded)


# ---- minimal reproductions of what these properties found ----------------------------------------
def run_resuming(RE, plan) -> list[tuple[str, dict]]:
    docs: list[tuple[str, dict]] = []
    token = RE.subscribe(lambda name, doc: docs.append((name, doc)))
    try:
        try:
            RE(plan)
        except RunEngineInterrupted:
            while RE.state.is_paused:
                try:
                    RE.resume()
                except RunEngineInterrupted:
                    pass
    finally:
        RE.unsubscribe(token)
    validate(docs)
    return docs


def test_pause_right_after_a_save_emits_no_second_event(RE):
    """Fixed: the replay re-took the point and emitted it again with the same seq_num (as
    bluesky does, test_1event_rewind); e.g. scan([det], motor, -1, 1, 3) paused at its first
    'save' (message 12) gave seq_nums [1, 1, 2, 3]."""
    det = make_hw().det
    plan = [
        Msg("open_run"),
        Msg("checkpoint"),
        Msg("create", name="primary"),
        Msg("read", det),
        Msg("save"),
        Msg("pause"),
        Msg("close_run"),
    ]
    docs = run_resuming(RE, plan)
    assert [d["seq_num"] for n, d in docs if n == "event"] == [1]
    assert docs[-1][1]["num_events"] == {"primary": 1}
    assert docs[-1][1]["exit_status"] == "success"


def test_pause_right_after_close_run_does_not_replay_the_closed_run(RE):
    """Fixed: the replayed 'create' of the closed run raised IllegalMessageSequence ("Cannot
    create an event bundle without an open run") and failed the plan; e.g. count([det], num=3)
    paused at its 'close_run' (message 23)."""
    det = make_hw().det
    plan = [
        Msg("open_run"),
        Msg("checkpoint"),
        Msg("create", name="primary"),
        Msg("read", det),
        Msg("save"),
        Msg("close_run"),
        Msg("pause"),
    ]
    docs = run_resuming(RE, plan)
    assert [n for n, _ in docs] == ["start", "descriptor", "event", "stop"]
    assert docs[-1][1]["exit_status"] == "success"


def test_replayed_declare_stream_emits_no_second_descriptor(RE):
    """Fixed: baseline_decorator(scan) paused at its 'declare_stream' (message 3) emitted the
    baseline descriptor twice."""
    det = make_hw().det
    plan = [
        Msg("open_run"),
        Msg("checkpoint"),
        Msg("declare_stream", None, det, name="primary"),
        Msg("pause"),
        Msg("create", name="primary"),
        Msg("read", det),
        Msg("save"),
        Msg("close_run"),
    ]
    docs = run_resuming(RE, plan)
    assert [n for n, _ in docs] == ["start", "descriptor", "event", "stop"]


def test_a_pause_that_overtakes_a_pending_suspension_pauses_then_suspends(RE):
    """Fixed: a pause requested while a suspension was pending (state 'suspending') made the
    loop try suspending -> pausing, a TransitionError that ended the plan quietly: the run
    closed 'success' with its last points missing and RE() returned normally. Found as
    scan_nd with a deferred pause at message 21 and a suspension at message 35 (the checkpoint
    where the deferred pause fell due): 2 events instead of 3."""
    det = make_hw().det
    seen = []

    def hook(msg):
        seen.append(msg.command)
        if msg.command == "null" and seen.count("null") == 1:  # not again in the replay
            RE.request_suspend(lambda: asyncio.sleep(0.002), justification=SUSPENSION)
            RE.request_pause()

    plan = [
        Msg("open_run"),
        Msg("checkpoint"),
        Msg("null"),
        Msg("create", name="primary"),
        Msg("read", det),
        Msg("save"),
        Msg("close_run"),
    ]
    docs: list[tuple[str, dict]] = []
    token = RE.subscribe(lambda name, doc: docs.append((name, doc)))
    RE.msg_hook = hook
    try:
        with pytest.raises(RunEngineInterrupted):
            RE(plan)
        assert RE.state == "paused"
        RE.resume()  # then the held suspension, then the rest of the plan
    finally:
        RE.msg_hook = None
        RE.unsubscribe(token)
    assert RE.state == "idle"
    assert seen[seen.index("null") + 1] == "_start_suspender"
    validate(docs)
    assert [n for n, _ in docs] == ["start", "descriptor", "event", "stop"]
    assert docs[-1][1]["exit_status"] == "success"


class _PauseFails(SynAxis):
    """A Pausable device whose pause() raises."""

    def pause(self):
        raise RuntimeError("motor cannot pause")

    def resume(self):
        pass


def test_a_fault_while_pausing_fails_the_run_instead_of_ending_it_quietly(RE):
    """Fixed: an exception raised by the engine's own pause machinery (here a device's
    pause()) escaped the message loop unseen: the plan stopped where it was, the run closed
    with exit_status 'success' and RE() returned as if the plan had finished."""
    motor = _PauseFails(name="motor")
    docs: list[tuple[str, dict]] = []
    token = RE.subscribe(lambda name, doc: docs.append((name, doc)))
    plan = [Msg("open_run"), Msg("checkpoint"), Msg("read", motor), Msg("pause"), Msg("close_run")]
    try:
        with pytest.raises(RuntimeError, match="motor cannot pause"):
            RE(plan)
    finally:
        RE.unsubscribe(token)
    assert RE.state == "idle"
    assert docs[-1][0] == "stop" and docs[-1][1]["exit_status"] == "fail"
    assert "motor cannot pause" in docs[-1][1]["reason"]


def test_a_suspension_requested_while_aborting_is_ignored(RE):
    """Fixed: a suspension requested during the cleanup of an aborting plan made the loop try
    aborting -> running, a TransitionError. Found as adaptive_scan with request_suspend at
    messages 0 and 1, when a plan had no checkpoint before its first: the first aborts, the
    second comes from the cleanup's 'unstage'. Here the first finds a cleared checkpoint."""
    commands, states = [], []

    def hook(msg):
        commands.append(msg.command)
        if msg.command in ("null", "unstage"):  # the second one is the abort's cleanup
            RE.request_suspend(lambda: asyncio.sleep(0.002), justification=SUSPENSION)

    RE.msg_hook = hook
    RE.state_hook = lambda new, old: states.append(new)
    hw = make_hw()
    plan = bpp.stage_wrapper([Msg("clear_checkpoint"), Msg("null"), Msg("null")], [hw.det])
    with pytest.raises(RunEngineInterrupted):
        RE(plan)
    RE.msg_hook = RE.state_hook = None
    assert commands == ["stage", "clear_checkpoint", "null", "unstage"]
    assert states == ["running", "aborting", "idle"]


def test_two_suspensions_requested_at_once_run_one_after_the_other(RE):
    """Fixed: with two suspensions pending at once, the second was pushed under the first
    owing REPLAYED, so when the first ended the second (not started yet) was sent the replay's
    last response: "TypeError: can't send non-None value to a just-started generator". Found
    as relative_set_wrapper with suspensions at messages 24 and 27, a trip at 10 and a
    deferred pause at 32."""
    det = make_hw().det
    seen: list[str] = []

    def hook(msg):
        seen.append(msg.command)
        if msg.command == "read" and seen.count("read") == 1:
            for _ in range(2):
                RE.request_suspend(lambda: asyncio.sleep(0.002), justification=SUSPENSION)

    plan = [
        Msg("open_run"),
        Msg("checkpoint"),
        Msg("create", name="primary"),
        Msg("read", det),
        Msg("save"),
        Msg("close_run"),
    ]
    docs: list[tuple[str, dict]] = []
    token = RE.subscribe(lambda name, doc: docs.append((name, doc)))
    RE.msg_hook = hook
    try:
        RE(plan)
    finally:
        RE.msg_hook = None
        RE.unsubscribe(token)
    assert seen.count("_start_suspender") == 2
    validate(docs)
    assert [n for n, _ in docs] == ["start", "descriptor", "event", "stop"]
    assert docs[-1][1]["exit_status"] == "success"
