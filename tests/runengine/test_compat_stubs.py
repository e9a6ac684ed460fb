"""Small plans made of bluesky's plan stubs, on bluesky's RunEngine and on ours.

Same documents, messages, return values and final positions (see ``compat.py``).
"""

from __future__ import annotations

import asyncio
import inspect
import io
from collections import OrderedDict, defaultdict
from functools import partial

import pytest
from bluesky import plan_stubs as bps
from bluesky import plans as bp
from bluesky import preprocessors as bpp
from bluesky.utils import Msg, RunEngineInterrupted
from ophyd.status import DeviceStatus

from .side_by_side import assert_same_outcome, run_plan, validate_documents


def in_run(body, **md):
    """``body`` (a generator function) inside one run."""

    @bpp.run_decorator(md=md)
    def plan():
        return (yield from body())

    return plan()


def mv_and_mvr(hw):
    def body():
        yield from bps.mv(hw.motor1, 1, hw.motor2, 2)
        yield from bps.mvr(hw.motor1, 0.5)
        yield from bps.mov(hw.motor, -1)
        yield from bps.movr(hw.motor, -1, hw.motor2, 1)
        yield from bps.trigger_and_read([hw.det4, hw.det, hw.motor1, hw.motor2, hw.motor])

    return in_run(body)


def sets_and_waits(hw):
    def body():
        yield from bps.abs_set(hw.motor, 1, group="A")
        yield from bps.rel_set(hw.motor1, 2, group="A")
        yield from bps.wait("A")
        yield from bps.abs_set(hw.motor2, 3, wait=True)
        yield from bps.rel_set(hw.motor2, -1, wait=True)
        yield from bps.trigger(hw.det, group="B")
        yield from bps.wait(group="B", timeout=5)
        yield from bps.trigger(hw.det1, wait=True)
        yield from bps.trigger_and_read([hw.det, hw.det1, hw.motor, hw.motor1, hw.motor2])
        return (yield from bps.wait("nobody"))

    return in_run(body)


def trigger_and_read_streams(hw):
    def body():
        yield from bps.trigger_and_read([hw.det], name="primary")
        yield from bps.trigger_and_read([hw.det1, hw.det2], name="secondary")
        yield from bps.trigger_and_read([hw.det])
        reading = yield from bps.trigger_and_read([hw.det2, hw.det1], name="secondary")
        return reading

    return in_run(body)


def one_1d_steps(hw):
    def body():
        for x in (-1, 0, 1):
            yield from bps.one_1d_step([hw.det], hw.motor, x)
        return (yield from bps.one_1d_step([hw.det], hw.motor, 2))

    return in_run(body)


def one_nd_steps(hw):
    def body():
        cache = defaultdict(lambda: None)
        for x, y in ((0, 0), (1, 0), (1, 1)):
            yield from bps.one_nd_step([hw.det4], {hw.motor1: x, hw.motor2: y}, cache)
        yield from bps.move_per_step({hw.motor1: 5, hw.motor2: 5}, cache)
        yield from bps.move_per_step({hw.motor1: 5, hw.motor2: 6}, cache)
        yield from bps.trigger_and_read([hw.det4], name="final")

    return in_run(body)


def one_shots(hw):
    def body():
        yield from bps.one_shot([hw.det, hw.det1])
        yield from bps.one_shot([hw.det, hw.det1])

    return in_run(body)


def configure_in_a_run(hw):
    def body():
        yield from bps.trigger_and_read([hw.det, hw.motor])
        old_new = yield from bps.configure(hw.det, OrderedDict(sigma=2, center=1))
        yield from bps.trigger_and_read([hw.det, hw.motor])
        yield from bps.configure(hw.motor1, {"velocity": 3})  # in no stream: no descriptor
        yield from bps.trigger_and_read([hw.det, hw.motor])
        return old_new

    return in_run(body)


def configure_outside_a_run(hw):
    def plan():
        yield from bps.configure(hw.det, {"Imax": 3})
        yield from in_run(lambda: bps.trigger_and_read([hw.det]))

    return plan()


def stage_unstage(hw):
    def body():
        yield from bps.stage(hw.det)
        yield from bps.stage_all(hw.det1, hw.motor)
        yield from bps.trigger_and_read([hw.det, hw.det1])
        yield from bps.unstage_all(hw.det1, hw.motor)
        yield from bps.unstage(hw.det)
        yield from bps.stage(hw.det2)  # left staged: the engine unstages it at the end

    return in_run(body)


def monitor_a_signal(hw):
    def body():
        yield from bps.monitor(hw.sig, name="sig_monitor")
        yield from bps.mv(hw.sig, 1)
        yield from bps.mv(hw.sig, 2)
        yield from bps.trigger_and_read([hw.det])
        yield from bps.unmonitor(hw.sig)
        yield from bps.mv(hw.sig, 3)  # not recorded
        yield from bps.monitor(hw.motor.readback, name="rb")  # closed by close_run
        yield from bps.mv(hw.motor, 1)

    return in_run(body)


def monitor_pushed_readings(hw):
    """A device that passes readings to its subscribers and whose read() is async."""

    def body():
        yield from bps.monitor(hw.pushed, name="pushed")
        yield from bps.null()
        hw.pushed.push(1)
        yield from bps.trigger_and_read([hw.pushed])
        hw.pushed.push(2)
        yield from bps.unmonitor(hw.pushed)
        hw.pushed.push(3)
        yield from bps.trigger_and_read([hw.pushed])

    return in_run(body)


def monitor_same_timestamps(hw):
    """New values with one timestamp (a coarse device clock) are new events all the same."""

    def body():
        yield from bps.monitor(hw.pushed_same_time, name="coarse")
        for value in (1, 2, 3):
            hw.pushed_same_time.push(value)
            yield from bps.null()

    return in_run(body)


def edge_cases(hw):
    """Odd but valid sequences of messages."""

    def plan():
        yield Msg("null")
        yield Msg("open_run", plan_name="custom", scan_id=5)  # plan md beats the engine's
        yield Msg("declare_stream", None, hw.det, name="primary")
        yield Msg("declare_stream", None, hw.det, name="primary")  # again: a new descriptor
        yield from bps.create("primary")
        yield from bps.read(hw.det)
        yield from bps.drop()
        yield from bps.create("empty")
        yield from bps.save()  # nothing read: no event, no descriptor
        yield from bps.trigger_and_read([hw.det])
        yield from bps.trigger_and_read([hw.sig, hw.det_with_conf], name="other")
        yield Msg("stage", hw.det)
        yield Msg("unstage", hw.det)
        yield Msg("unstage", hw.det)  # not staged any more
        yield Msg("unstage", hw.det1)  # never staged
        yield Msg("sleep", None, 0)
        yield Msg("wait", None, group="nobody")
        yield Msg("close_run", exit_status="abort", reason="on purpose")
        yield Msg("open_run")
        yield Msg("close_run")
        return (yield from bps.rd(hw.det4))

    return plan()


def declared_streams(hw):
    def body():
        yield from bps.declare_stream(hw.det, hw.motor, name="primary")
        yield from bps.declare_stream(hw.det1, name="empty")
        yield from bps.trigger_and_read([hw.det, hw.motor])
        yield from bps.trigger_and_read([hw.det, hw.motor])

    return in_run(body)


def create_read_save_drop(hw):
    def body():
        yield from bps.create("primary")
        yield from bps.read(hw.det)
        yield from bps.read(hw.motor)
        yield from bps.save()
        yield from bps.create(name="primary")
        yield from bps.read(hw.det)
        yield from bps.read(hw.motor)
        yield from bps.drop()
        yield from bps.create("empty")
        yield from bps.save()  # an empty bundle emits nothing
        reading = yield from bps.read(hw.det)  # outside a bundle: a reading, no event
        yield from bps.create()  # bluesky's default name: 'primary'
        yield from bps.read(hw.det)
        yield from bps.read(hw.motor)
        yield from bps.save()
        return reading

    return in_run(body)


def sleep_checkpoint_null(hw):
    def body():
        yield from bps.checkpoint()
        yield from bps.sleep(0.001)
        yield from bps.null()
        yield from bps.clear_checkpoint()
        yield from bps.checkpoint()
        yield from bps.trigger_and_read([hw.det])

    return in_run(body)


def rd_and_locate(hw):
    def plan():
        yield from bps.mv(hw.motor, 2, hw.loc_motor, 3, hw.async_motor, 4)
        values = {
            "motor": (yield from bps.rd(hw.motor)),
            "det": (yield from bps.rd(hw.det)),
            "sig": (yield from bps.rd(hw.sig)),
            "loc_motor": (yield from bps.rd(hw.loc_motor)),
            "async_motor": (yield from bps.rd(hw.async_motor)),
            "one": (yield from bps.locate(hw.loc_motor)),
            "several": (yield from bps.locate(hw.loc_motor, hw.async_motor)),
            "unsqueezed": (yield from bps.locate(hw.async_motor, squeeze=False)),
        }
        return values

    return plan()


def repeats(hw):
    def plan():
        yield from bps.repeat(lambda: bps.trigger_and_read([hw.det]), num=3)
        yield from bps.repeater(2, bps.trigger_and_read, [hw.det1], name="one")
        yield from bps.caching_repeater(2, bps.trigger_and_read([hw.det2], name="two"))
        yield from bps.broadcast_msg("trigger", [hw.det, hw.det1], group="b")
        yield from bps.wait("b")

    return in_run(plan)


def wait_for_futures(hw):
    async def ready():
        await asyncio.sleep(0)
        return 1

    def plan():
        futures = yield from bps.wait_for([ready, ready])
        return [f.result() for f in futures]

    return plan()


def subscribe_in_a_plan(hw):
    seen = []

    def plan():
        token = yield from bps.subscribe("event", lambda name, doc: seen.append(name))
        yield from in_run(lambda: bps.trigger_and_read([hw.det]))
        yield from bps.unsubscribe(token)
        yield from in_run(lambda: bps.trigger_and_read([hw.det]))
        return seen

    return plan()


def two_runs_interleaved(hw):
    """Two runs open at once, told apart by their run keys."""

    def plan():
        yield Msg("open_run", which="a", run="a")
        yield Msg("open_run", which="b", run="b")
        for key in ("a", "b", "a"):
            yield Msg("create", name="primary", run=key)
            yield Msg("read", hw.det, run=key)
            yield Msg("save", run=key)
        yield Msg("close_run", run="b")
        yield Msg("close_run", exit_status="fail", reason="because", run="a")

    return plan()


def runs_in_sequence(hw):
    def plan():
        uids = []
        for i in range(3):
            uid = yield from bps.open_run(md={"i": i})
            yield from bps.trigger_and_read([hw.det])
            yield from bps.close_run()
            uids.append(uid)
        return uids

    return plan()


def stop_a_device(hw):
    def plan():
        yield from bps.abs_set(hw.motor, 1, wait=True)
        yield from bps.stop(hw.motor)

    return plan()


def input_plan(hw, monkeypatch_stdin):
    monkeypatch_stdin("an answer\n")

    def plan():
        return (yield from bps.input_plan("question? "))

    return plan()


def rewindable_and_pchain(hw):
    def plan():
        flag = yield Msg("rewindable", None, None)
        was = yield Msg("rewindable", None, False)
        yield from bps.trigger_and_read([hw.det])
        now = yield Msg("rewindable", None, True)
        return flag, was, now

    return in_run(plan)


def engine_class(hw):
    def plan():
        cls = yield Msg("RE_class")
        return cls.__name__ == "RunEngine"

    return plan()


STUB_PLANS = {
    "mv_and_mvr": mv_and_mvr,
    "sets_and_waits": sets_and_waits,
    "trigger_and_read_streams": trigger_and_read_streams,
    "one_1d_steps": one_1d_steps,
    "one_nd_steps": one_nd_steps,
    "one_shots": one_shots,
    "configure_in_a_run": configure_in_a_run,
    "configure_outside_a_run": configure_outside_a_run,
    "stage_unstage": stage_unstage,
    "monitor_a_signal": monitor_a_signal,
    "monitor_pushed_readings": monitor_pushed_readings,
    "edge_cases": edge_cases,
    "monitor_same_timestamps": monitor_same_timestamps,
    "declared_streams": declared_streams,
    "create_read_save_drop": create_read_save_drop,
    "sleep_checkpoint_null": sleep_checkpoint_null,
    "rd_and_locate": rd_and_locate,
    "repeats": repeats,
    "wait_for_futures": wait_for_futures,
    "subscribe_in_a_plan": subscribe_in_a_plan,
    "two_runs_interleaved": two_runs_interleaved,
    "runs_in_sequence": runs_in_sequence,
    "stop_a_device": stop_a_device,
    "rewindable_and_pchain": rewindable_and_pchain,
    "engine_class": engine_class,
}


# bluesky's declare_stream makes a frozenset of the objects: its descriptor's keys come in
# hash order. Ours keep the order the objects were declared in (test_declared_stream_order).
UNORDERED = {"declared_streams"}


@pytest.mark.filterwarnings("ignore:The caching_repeater will be removed")
@pytest.mark.parametrize("name", STUB_PLANS)
def test_stub_plan_gives_the_same_documents(compare, name):
    _, ours = compare(STUB_PLANS[name], check={"ordered": name not in UNORDERED})
    assert ours.error is None


def test_declared_stream_order(engine_pair):
    """Ours: a declared stream's keys in declaration order (bluesky: frozenset order)."""
    ours = run_plan(engine_pair[1], declared_streams)
    primary = ours.of("descriptor")[0]
    assert list(primary["data_keys"]) == ["det", "motor", "motor_setpoint"]
    assert list(primary["object_keys"]) == list(primary["configuration"]) == ["det", "motor"]


def test_configure_reemits_every_stream_with_the_object(engine_pair):
    """A configured object gets a new descriptor in every stream it is read in, at once.

    bluesky 1.15.1 raises KeyError here: its configure looks the object up in the describe
    cache of the last stream used only ('other'), since caches became per-stream.
    """

    def make(hw):
        def body():
            yield from bps.trigger_and_read([hw.det])
            yield from bps.trigger_and_read([hw.det, hw.det1], name="other")
            yield from bps.trigger_and_read([hw.det1], name="third")
            yield from bps.configure(hw.det, {"sigma": 2})
            yield from bps.trigger_and_read([hw.det])
            yield from bps.trigger_and_read([hw.det, hw.det1], name="other")

        return in_run(body)

    ours = run_plan(engine_pair[1], make)
    assert ours.error is None
    validate_documents(ours.docs)
    names = [
        (name, doc.get("name", doc.get("seq_num")))
        for name, doc in ours.docs
        if name in ("descriptor", "event")
    ]
    assert names == [
        ("descriptor", "primary"),
        ("event", 1),
        ("descriptor", "other"),
        ("event", 1),
        ("descriptor", "third"),
        ("event", 1),
        ("descriptor", "primary"),
        ("descriptor", "other"),
        ("event", 2),
        ("event", 2),
    ]
    descriptors = ours.of("descriptor")
    assert descriptors[0]["configuration"]["det"]["data"]["det_sigma"] == 1
    assert descriptors[3]["configuration"]["det"]["data"]["det_sigma"] == 2
    assert descriptors[4]["configuration"]["det"]["data"]["det_sigma"] == 2
    assert descriptors[4]["configuration"]["det1"] == descriptors[1]["configuration"]["det1"]
    assert ours.of("event")[-1]["descriptor"] == descriptors[4]["uid"]
    assert ours.of("stop")[0]["num_events"] == {"primary": 2, "other": 2, "third": 1}


def test_monitor_without_a_name(engine_pair):
    """``bps.monitor(obj)`` names the stream '<obj>_monitor' in ours.

    bps.monitor sends name=None; bluesky 1.15.1 then composes a descriptor named None, which
    fails its own schema validation and ends the plan. monitor_during_wrapper gives
    '<obj>_monitor' explicitly; ours uses that name for a missing or None name.
    """

    def make(hw):
        def body():
            yield from bps.monitor(hw.sig)
            yield from bps.mv(hw.sig, 5)

        return in_run(body)

    ours = run_plan(engine_pair[1], make)
    assert ours.error is None
    validate_documents(ours.docs)
    assert [d["name"] for d in ours.of("descriptor")] == ["sig_monitor"]
    assert [e["data"] for e in ours.of("event")] == [{"sig": 5}]
    theirs = run_plan(engine_pair[0], make)
    assert theirs.of("stop")[0]["exit_status"] == "fail"


def test_monitor_message_without_a_name(engine_pair):
    """``Msg('monitor', obj)`` without a name: '<obj>_monitor' in ours, a random
    'monitor-xxxxxx' in bluesky 1.15.1. Otherwise the same documents."""

    def make(hw):
        def body():
            yield Msg("monitor", hw.sig)
            yield from bps.mv(hw.sig, 5)

        return in_run(body)

    theirs, ours = (run_plan(RE, make) for RE in engine_pair)
    assert [d["name"] for d in ours.of("descriptor")] == ["sig_monitor"]
    random_name = theirs.of("descriptor")[0]["name"]
    assert random_name.startswith("monitor-")
    theirs.of("descriptor")[0]["name"] = "sig_monitor"
    stop = theirs.of("stop")[0]
    stop["num_events"] = {"sig_monitor": stop["num_events"].pop(random_name)}
    assert_same_outcome(theirs, ours)


def test_rewindable_set_by_a_plan_is_the_engines_flag(engine_pair):
    """Msg('rewindable', None, False) sets RE.rewindable, which outlasts the call."""

    def make(hw):
        def plan():
            yield Msg("rewindable", None, False)
            yield from bp.count([hw.det])

        return plan()

    flags = []
    for RE in engine_pair:
        run_plan(RE, make)
        flags.append(RE.rewindable)
        RE.rewindable = True
    assert flags == [False, False]


def test_input_plan_reads_a_line(compare, monkeypatch, capsys):
    def make(hw):
        return input_plan(hw, lambda text: monkeypatch.setattr("sys.stdin", io.StringIO(text)))

    _, ours = compare(make)
    assert ours.result == ()
    assert capsys.readouterr().out == "question? " * 2


def test_return_value_of_a_composed_plan_with_call_returns_result(engine_pair):
    """RunEngineResult: the same fields from both engines (uids normalized)."""
    from .side_by_side import Normalizer, make_devices, normalize

    def record(docs, name, doc):
        docs.append((name, doc))

    results = []
    for RE in engine_pair:
        RE._call_returns_result = True
        try:
            hw = make_devices()
            docs: list = []
            result = RE(runs_in_sequence(hw), partial(record, docs))
        finally:
            RE._call_returns_result = False
        norm = Normalizer()
        normalize(docs, norm)
        results.append(
            (
                norm.value(result.run_start_uids),
                norm.value(result.plan_result),
                result.exit_status,
                result.interrupted,
                result.reason,
                result.exception,
            )
        )
    assert results[0] == results[1]
    assert results[1][1] == ["<uid 0>", "<uid 4>", "<uid 8>"]


def test_every_plan_stub_is_used_or_explained():
    """Stubs not composed above are flyer stubs (with the collect commands) or interactive."""
    used = inspect.getsource(inspect.getmodule(test_every_plan_stub_is_used_or_explained))
    public = {
        name
        for name, obj in vars(bps).items()
        if inspect.isfunction(obj) and obj.__module__ == bps.__name__ and not name.startswith("_")
    }
    explained = {
        "collect": "flyers, with runengine/commands/flyers.py",
        "collect_while_completing": "flyers, with runengine/commands/flyers.py",
        "complete": "flyers, with runengine/commands/flyers.py",
        "complete_all": "flyers, with runengine/commands/flyers.py",
        "kickoff": "flyers, with runengine/commands/flyers.py",
        "kickoff_all": "flyers, with runengine/commands/flyers.py",
        "prepare": "no ophyd.sim device is Preparable; with the flyers",
        "pause": "pausing is tested in tests/plans/test_pausing.py and test_control.py",
        "deferred_pause": "pausing is tested in tests/plans/test_pausing.py and test_control.py",
        "install_suspender": "suspenders: test_compat_preprocessors.py (suspend_wrapper)",
        "remove_suspender": "suspenders: test_compat_preprocessors.py (suspend_wrapper)",
    }
    missing = {name for name in public if f"bps.{name}(" not in used} - set(explained)
    assert missing == set()


# ---- plans that go wrong: the same exception class, documents and exit status ---------------
class FailingMover:
    """A movable whose every move fails."""

    name = "failing"
    parent = None

    def set(self, value):
        status = DeviceStatus(self)
        status.set_exception(RuntimeError(f"cannot go to {value}"))
        return status

    def read(self):
        return {}

    def describe(self):
        return {}


def _run(*msgs):
    def make(hw):
        def plan():
            yield from bps.open_run()
            for msg in msgs:
                yield msg(hw) if callable(msg) else msg
            yield from bps.close_run()

        return plan()

    return make


def _bundle(*reads):
    return [
        Msg("create", name="primary"),
        *(lambda hw, r=r: Msg("read", getattr(hw, r)) for r in reads),
    ]


FAILING = {
    "open_run_twice": _run(Msg("open_run")),
    "close_run_twice": _run(Msg("close_run"), Msg("close_run")),
    "create_without_a_run": lambda hw: iter([Msg("create", name="primary")]),
    "save_without_create": _run(Msg("save")),
    "drop_without_create": _run(Msg("drop")),
    "create_twice": _run(*_bundle("det"), Msg("create", name="primary")),
    "checkpoint_in_a_bundle": _run(*_bundle("det"), Msg("checkpoint")),
    "configure_in_a_bundle": _run(*_bundle("det"), lambda hw: Msg("configure", hw.det, {})),
    "mismatched_objects": _run(*_bundle("det"), Msg("save"), *_bundle("det1"), Msg("save")),
    "colliding_keys": _run(*_bundle("det", "identical_det")),
    "unknown_command": _run(Msg("no_such_command")),
    "read_a_non_readable": _run(Msg("read", object())),
    "set_a_non_movable": _run(Msg("set", object(), 1)),
    "wait_without_a_group": _run(Msg("wait")),
    "monitor_twice": _run(
        lambda hw: Msg("monitor", hw.sig, name="a"), lambda hw: Msg("monitor", hw.sig, name="b")
    ),
    "unmonitor_unmonitored": _run(lambda hw: Msg("unmonitor", hw.sig)),
    "failed_move_waited_on": lambda hw: in_run(lambda: bps.mv(FailingMover(), 1)),
    "failed_move_never_waited_on": lambda hw: in_run(_set_and_go_on),
    "read_twice_in_a_bundle": _run(*_bundle("det", "det")),
    "read_a_component_of_a_device_read": _run(
        *_bundle("motor"), lambda hw: Msg("read", hw.motor.readback)
    ),
    "read_a_device_after_its_component": _run(
        lambda hw: Msg("create", name="primary"),
        lambda hw: Msg("read", hw.motor.setpoint),
        lambda hw: Msg("read", hw.motor),
    ),
    "declared_stream_read_otherwise": _run(
        lambda hw: Msg("declare_stream", None, hw.det, name="primary"),
        *_bundle("det1"),
        Msg("save"),
    ),
    "read_none": _run(Msg("read", None)),
    "locate_a_non_locatable": _run(lambda hw: Msg("locate", hw.motor)),
    "stop_a_non_stoppable": _run(lambda hw: Msg("stop", hw.sig)),
}


def _set_and_go_on():
    """The failure reaches the plan at a later message (bluesky throws it in as it arrives)."""
    yield from bps.abs_set(FailingMover(), 1)
    yield from bps.sleep(0.01)
    yield from bps.null()


NO_RUN_TO_FAIL = {"close_run_twice", "create_without_a_run"}


@pytest.mark.parametrize("name", FAILING)
def test_failing_plan_fails_the_same_way(compare, name):
    """Our exception may say more than bluesky's (its class, or a subclass of it)."""
    theirs, ours = compare(FAILING[name], check={"error_text": False})
    assert theirs.error is not None and not isinstance(theirs.error, RunEngineInterrupted)
    if name not in NO_RUN_TO_FAIL:
        stop = ours.of("stop")[-1]
        assert stop["exit_status"] == "fail" and stop["reason"]
