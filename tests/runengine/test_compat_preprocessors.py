"""bluesky's preprocessors (plan wrappers and decorators) on bluesky's RunEngine and on ours.

Same documents, messages, return values and final positions (see ``compat.py``), plus the
engine-level uses: ``RE.preprocessors`` with SupplementalData, suspenders, and how a run
closed by ``run_wrapper`` reports an abort.
"""

from __future__ import annotations

from collections import defaultdict

import pytest
from bluesky import plan_stubs as bps
from bluesky import plans as bp
from bluesky import preprocessors as bpp
from bluesky.suspenders import SuspendBoolHigh
from bluesky.utils import Msg, RunEngineInterrupted

from .side_by_side import (
    Normalizer,
    assert_same_outcome,
    make_devices,
    normalize,
    run_plan,
    validate_documents,
)


def _read(hw, *devices, name="primary"):
    return bps.trigger_and_read(list(devices), name=name)


def run_wrapper(hw):
    return bpp.run_wrapper(_read(hw, hw.det), md={"wrapped": True})


def run_decorator(hw):
    @bpp.run_decorator(md={"decorated": 1})
    def plan():
        yield from _read(hw, hw.det)
        return "done"

    return plan()


def run_wrapper_on_failure(hw):
    def failing():
        yield from _read(hw, hw.det)
        raise RuntimeError("the sample fell")

    return bpp.run_wrapper(failing())


def baseline_wrapper(hw):
    return bpp.baseline_wrapper(bp.scan([hw.det], hw.motor, 0, 1, 2), [hw.det1, hw.motor1])


def baseline_decorator(hw):
    @bpp.baseline_decorator([hw.det2, hw.motor2], name="around")
    def plan():
        return (yield from bp.count([hw.det]))

    return plan()


def supplemental_data(hw):
    sd = bpp.SupplementalData(baseline=[hw.det1, hw.motor1], monitors=[hw.sig])

    def body():
        yield from bps.mv(hw.sig, 1)
        yield from _read(hw, hw.det)
        yield from bps.mv(hw.sig, 2)

    return sd(bpp.run_wrapper(body()))


def monitor_during_decorator(hw):
    @bpp.monitor_during_decorator([hw.sig, hw.motor.readback])
    @bpp.run_decorator()
    def plan():
        for value in (1, 2):
            # one at a time: ophyd.sim's two monitors, moved together, call back in either
            # order (bluesky's engine shows either too)
            yield from bps.mv(hw.sig, value)
            yield from bps.mv(hw.motor, value)
            yield from _read(hw, hw.det)

    return plan()


def finalize_wrapper(hw):
    def body():
        yield from bps.mv(hw.motor, 3)
        yield from _read(hw, hw.det)

    return bpp.finalize_wrapper(bpp.run_wrapper(body()), bps.mv(hw.motor, 0))


def finalize_decorator_on_failure(hw):
    @bpp.finalize_decorator(lambda: bps.mv(hw.motor1, -1))
    @bpp.run_decorator()
    def plan():
        yield from bps.mv(hw.motor1, 1)
        raise ValueError("fails after a move")

    return plan()


def contingency_wrapper(hw):
    def body():
        yield from _read(hw, hw.det)
        raise KeyError("oops")

    def except_plan(err):
        yield from bps.mv(hw.motor, 7)
        yield from _read(hw, hw.motor, name="recovery")

    return bpp.run_wrapper(
        bpp.contingency_wrapper(
            body(), except_plan=except_plan, else_plan=bps.null, final_plan=bps.null
        )
    )


def relative_set_wrapper(hw):
    hw.motor.set(1).wait(1)
    hw.motor1.set(2).wait(1)

    def body():
        yield from bps.mv(hw.motor, 0.5)
        yield from bps.abs_set(hw.motor1, -0.5, wait=True)
        yield from _read(hw, hw.det, hw.motor, hw.motor1)

    return bpp.relative_set_wrapper(bpp.run_wrapper(body()), [hw.motor, hw.motor1])


def reset_positions_wrapper(hw):
    hw.motor.set(1).wait(1)

    def body():
        yield from bps.mv(hw.motor, 3, hw.motor1, 4)
        yield from _read(hw, hw.det)

    return bpp.reset_positions_wrapper(bpp.run_wrapper(body()))


def reset_positions_decorator_some(hw):
    @bpp.reset_positions_decorator([hw.motor2])
    def plan():
        yield from bp.scan([hw.det2], hw.motor2, 1, 2, 2)
        yield from bps.mv(hw.motor, 5)

    return plan()


def subs_wrapper(hw):
    names = []

    def plan():
        yield from bpp.subs_wrapper(bp.count([hw.det], 2), lambda name, doc: names.append(name))
        return names

    return plan()


def subs_decorator(hw):
    seen = defaultdict(list)

    @bpp.subs_decorator({"start": [lambda n, d: seen[n].append(d["plan_name"])]})
    def plan():
        yield from bp.count([hw.det])
        return dict(seen)

    return plan()


def suspend_wrapper_untripped(hw):
    suspender = SuspendBoolHigh(hw.bool_sig)
    return bpp.suspend_wrapper(bp.count([hw.det], 2), suspender)


def inject_md(hw):
    return bpp.inject_md_wrapper(bp.count([hw.det], md={"a": 1}), {"b": 2, "a": "injected"})


def inject_md_decorator(hw):
    @bpp.inject_md_decorator({"operator": "ada"})
    def plan():
        yield from bp.count([hw.det])
        yield from bp.count([hw.det1])

    return plan()


def msg_mutator(hw):
    def double_moves(msg):
        if msg.command == "set":
            return msg._replace(args=(msg.args[0] * 2,))
        return msg

    return bpp.msg_mutator(bp.scan([hw.det], hw.motor, 0, 1, 3), double_moves)


def plan_mutator(hw):
    def read_det1_too(msg):
        if msg.command == "save":
            return bpp.pchain(bps.read(hw.det1), bpp.single_gen(msg)), None
        if msg.command == "close_run":
            return None, bps.null()
        return None, None

    return bpp.plan_mutator(bp.count([hw.det], 2), read_det1_too)


def pchain(hw):
    return bpp.pchain(bp.count([hw.det]), bps.mv(hw.motor, 1), bp.count([hw.det]))


def stub_wrapper(hw):
    def plan():
        yield from bps.open_run(md={"outer": True})
        yield from bpp.stub_wrapper(bp.scan([hw.det], hw.motor, 0, 1, 2))
        yield from bps.close_run()

    return plan()


def lazily_stage_wrapper(hw):
    def body():
        yield from bps.mv(hw.motor, 1)
        yield from _read(hw, hw.det, hw.det1, hw.motor)
        yield from _read(hw, hw.det, hw.det1, hw.motor)

    return bpp.lazily_stage_wrapper(bpp.run_wrapper(body()))


def lazily_stage_wrapper_redundant(hw):
    """scan stages its devices too: ophyd refuses to stage twice (RedundantStaging)."""
    return bpp.lazily_stage_wrapper(bp.scan([hw.det, hw.det1], hw.motor, 0, 1, 2))


def stage_decorator(hw):
    @bpp.stage_decorator([hw.det, hw.det2])
    @bpp.run_decorator()
    def plan():
        yield from _read(hw, hw.det, hw.det2)

    return plan()


def configure_count_time_wrapper(hw):
    return bpp.configure_count_time_wrapper(bp.count([hw.det_with_count_time], 2), 0.5)


def configure_count_time_decorator(hw):
    @bpp.configure_count_time_decorator(None)  # None: no change
    def plan():
        yield from bp.count([hw.det_with_count_time])

    return plan()


def rewindable_wrapper(hw):
    return bpp.rewindable_wrapper(bp.count([hw.det], 2), False)


def set_run_key_wrapper(hw):
    def plan():
        yield from bpp.set_run_key_wrapper(bp.count([hw.det]), "inner")
        yield from bpp.set_run_key_decorator("other")(bp.count)([hw.det1])

    return plan()


def print_summary_wrapper(hw):
    return bpp.print_summary_wrapper(bp.scan([hw.det], hw.motor, 0, 1, 2))


PREPROCESSED = {
    "run_wrapper": run_wrapper,
    "run_decorator": run_decorator,
    "run_wrapper_on_failure": run_wrapper_on_failure,
    "baseline_wrapper": baseline_wrapper,
    "baseline_decorator": baseline_decorator,
    "supplemental_data": supplemental_data,
    "monitor_during_decorator": monitor_during_decorator,
    "finalize_wrapper": finalize_wrapper,
    "finalize_decorator_on_failure": finalize_decorator_on_failure,
    "contingency_wrapper": contingency_wrapper,
    "relative_set_wrapper": relative_set_wrapper,
    "reset_positions_wrapper": reset_positions_wrapper,
    "reset_positions_decorator_some": reset_positions_decorator_some,
    "subs_wrapper": subs_wrapper,
    "subs_decorator": subs_decorator,
    "suspend_wrapper_untripped": suspend_wrapper_untripped,
    "inject_md": inject_md,
    "inject_md_decorator": inject_md_decorator,
    "msg_mutator": msg_mutator,
    "plan_mutator": plan_mutator,
    "pchain": pchain,
    "stub_wrapper": stub_wrapper,
    "lazily_stage_wrapper": lazily_stage_wrapper,
    "lazily_stage_wrapper_redundant": lazily_stage_wrapper_redundant,
    "stage_decorator": stage_decorator,
    "configure_count_time_wrapper": configure_count_time_wrapper,
    "configure_count_time_decorator": configure_count_time_decorator,
    "rewindable_wrapper": rewindable_wrapper,
    "set_run_key_wrapper": set_run_key_wrapper,
    "print_summary_wrapper": print_summary_wrapper,
}


# These declare their stream: bluesky's descriptor then has its keys in frozenset order.
UNORDERED = {"baseline_wrapper", "baseline_decorator", "supplemental_data"}


@pytest.mark.parametrize("name", PREPROCESSED)
def test_preprocessed_plan_gives_the_same_documents(compare, name):
    compare(PREPROCESSED[name], check={"ordered": name not in UNORDERED})


def test_print_summary_prints_the_same(compare, capsys):
    compare(print_summary_wrapper)
    out = capsys.readouterr().out
    assert out[: len(out) // 2] == out[len(out) // 2 :]
    assert "motor -> 0" in out and "Read ['det', 'motor']" in out


def test_supplemental_data_as_an_engine_preprocessor(engine_pair):
    """The usual setup: ``RE.preprocessors.append(sd)``; every run gets baseline and monitors."""
    outcomes = []
    for RE in engine_pair:
        hw = make_devices()
        RE.preprocessors.append(bpp.SupplementalData(baseline=[hw.det1], monitors=[hw.sig]))

        def plan(hw=hw):
            yield from bp.count([hw.det], 2)
            yield from bps.mv(hw.sig, 3)
            yield from bp.scan([hw.det], hw.motor, 0, 1, 2)

        outcomes.append(run_plan(RE, lambda _hw, plan=plan: plan(), hw=hw))
    theirs, ours = outcomes
    assert_same_outcome(theirs, ours, ordered=False)  # baseline: a declared stream
    assert [d["name"] for d in ours.of("descriptor")] == [
        "baseline",
        "sig_monitor",
        "primary",
        "baseline",
        "sig_monitor",
        "primary",
    ]
    assert [n for n, _ in ours.docs].count("event") == 4 + 5  # + a sig event in run 2


def test_preprocessors_apply_last_outermost(engine_pair):
    """bluesky applies RE.preprocessors in list order: the last one is outermost."""
    outcomes = []
    for RE in engine_pair:
        RE.preprocessors.extend(
            [
                lambda plan: bpp.inject_md_wrapper(plan, {"who": "first"}),
                lambda plan: bpp.inject_md_wrapper(plan, {"who": "last"}),
            ]
        )
        outcomes.append(run_plan(RE, lambda hw: bp.count([hw.det])))
    assert_same_outcome(*outcomes)
    assert outcomes[1].of("start")[0]["who"] == "last"


def _self_clearing_suspender(hw):
    """Trips on bool_sig; its pre_plan clears the signal, on the loop thread: no race."""

    def clear():
        hw.bool_sig.put(0)
        yield from bps.null()

    return SuspendBoolHigh(hw.bool_sig, sleep=0, pre_plan=clear)


def test_suspended_plan_replays_from_its_checkpoint(engine_pair):
    """A suspender trips inside a plan and clears in its pre_plan: the same messages and data."""
    outcomes = []
    for RE in engine_pair:
        hw = make_devices()
        RE.install_suspender(_self_clearing_suspender(hw))

        def plan(hw=hw):
            yield from bps.open_run()
            yield from _read(hw, hw.det)
            yield from bps.checkpoint()
            hw.bool_sig.put(1)  # trips the suspender (in the plan: not replayed)
            yield from bps.sleep(0.1)  # cut short by the suspension, replayed after it
            yield from _read(hw, hw.det)
            yield from bps.close_run()

        outcomes.append(run_plan(RE, lambda _hw, plan=plan: plan(), hw=hw))
        RE.clear_suspenders()
    theirs, ours = outcomes
    assert_same_outcome(theirs, ours)
    commands = [m.command for m in ours.msgs]
    assert commands[commands.index("checkpoint") :] == [
        "checkpoint",
        "sleep",
        "_start_suspender",
        "rewindable",
        "null",
        "wait_for",
        "_resume_from_suspender",
        "rewindable",
        "sleep",
        "trigger",
        "wait",
        "create",
        "read",
        "save",
        "close_run",
    ]
    assert [e["seq_num"] for e in ours.of("event")] == [1, 2]


def test_interruptions_are_numbered_on_through_rewinds(engine_pair):
    """Deliberate fix: the interruptions stream is not rewound with the data.

    A suspension and a pause each rewind to the last checkpoint, and re-taken events reuse
    their seq_nums. bluesky 1.15.1 rewinds the interruptions counter too: its interruption
    events repeat seq_num 1 and its stop document counts 0 (suspension) or 2 (suspension,
    pause, resume) of them. Ours number them 1, 2, 3 and count 3. The rest is the same.
    """
    outcomes = []
    for RE in engine_pair:
        hw = make_devices()
        RE.install_suspender(_self_clearing_suspender(hw))
        RE.record_interruptions = True

        def plan(hw=hw):
            yield from bps.open_run()
            yield from _read(hw, hw.det)
            yield from bps.checkpoint()
            hw.bool_sig.put(1)
            yield from bps.sleep(0.1)
            yield from _read(hw, hw.det)
            yield from bps.checkpoint()
            yield Msg("pause")
            yield from bps.close_run()

        docs = []
        with pytest.raises(RunEngineInterrupted):
            RE(plan(), lambda name, doc, docs=docs: docs.append((name, doc)))
        RE.resume()
        RE.clear_suspenders()
        outcomes.append(docs)
    theirs, ours = outcomes
    validate_documents(ours)
    interruptions = [d for n, d in ours if n == "event" and "interruption" in d["data"]]
    assert [(d["data"]["interruption"], d["seq_num"]) for d in interruptions] == [
        ("Signal bool_sig is high", 1),
        ("pause", 2),
        ("resume", 3),
    ]
    assert ours[-1][1]["num_events"] == {"interruptions": 3, "primary": 2}
    n_theirs, n_ours = normalize(theirs), normalize(ours)
    for (name, doc_theirs), (_, doc_ours) in zip(n_theirs, n_ours, strict=True):
        if name == "event" and "interruption" in doc_ours["data"]:
            doc_ours["seq_num"] = doc_theirs["seq_num"]
        if name == "stop":
            doc_ours["num_events"] = doc_theirs["num_events"]
        _only_bluesky_fields(doc_ours, doc_theirs)
    assert n_ours == n_theirs


def _only_bluesky_fields(doc_ours, doc_theirs):
    """Drop what ours adds to the interruptions stream (who asked, why)."""
    for key in ("data_keys", "data", "timestamps"):
        if key in doc_ours and "interruption" in doc_ours[key]:
            doc_ours[key] = {k: v for k, v in doc_ours[key].items() if k in doc_theirs[key]}


def _pause_then_abort(RE, make_plan, reason):
    hw = make_devices()
    docs = []
    with pytest.raises(RunEngineInterrupted):
        RE(make_plan(hw), lambda name, doc: docs.append((name, doc)))
    assert RE.state == "paused"
    RE.abort(reason)
    assert RE.state == "idle"
    return docs


def test_abort_reason_is_kept_when_run_wrapper_closes_the_run(engine_pair):
    """Deliberate fix of a bluesky quirk (spec/engine.md §3.4, §8.1).

    run_wrapper closes an aborted run with ``close_run(exit_status='abort')`` and no reason;
    bluesky then writes reason='' and the reason given to RE.abort is lost. Ours keeps it.
    Everything else in the documents is the same.
    """

    def make(hw):
        def body():
            yield from _read(hw, hw.det)
            yield from bps.checkpoint()
            yield Msg("pause")
            yield from _read(hw, hw.det)

        return bpp.run_wrapper(body())

    theirs_RE, ours_RE = engine_pair
    theirs = _pause_then_abort(theirs_RE, make, "the beam is gone")
    ours = _pause_then_abort(ours_RE, make, "the beam is gone")
    (_, stop_theirs), (_, stop_ours) = theirs[-1], ours[-1]
    assert stop_theirs["exit_status"] == stop_ours["exit_status"] == "abort"
    assert stop_theirs["reason"] == ""  # bluesky's quirk
    assert stop_ours["reason"] == "the beam is gone"  # ours
    n_theirs, n_ours = normalize(theirs), normalize(ours)
    n_ours[-1][1]["reason"] = ""
    assert n_ours == n_theirs


def test_abort_reason_when_the_engine_closes_the_run(engine_pair):
    """Without run_wrapper the engine closes the run: both keep the reason."""

    def make(hw):
        def plan():
            yield from bps.open_run()
            yield from bps.checkpoint()
            yield Msg("pause")
            yield from _read(hw, hw.det)

        return plan()

    docs = [_pause_then_abort(RE, make, "why not") for RE in engine_pair]
    assert normalize(docs[0]) == normalize(docs[1])
    assert docs[1][-1][1]["reason"] == "why not"


def _exception_kind(exc):
    """The class of result.exception, which bluesky gives as a class after stop/halt."""
    return exc if isinstance(exc, type) or exc is None else type(exc)


@pytest.mark.parametrize("action", ["abort", "stop", "halt", "resume"])
def test_call_returns_result_after_a_pause(engine_pair, action):
    """RunEngineResult from abort/stop/halt/resume of a paused plan: the same fields.

    Deliberate fix (spec/engine.md §8.5): ``result.exception`` is always an exception instance
    in ours; bluesky gives the class itself after stop and halt, an instance after abort.
    """
    results, exceptions = [], []
    for RE in engine_pair:
        RE._call_returns_result = True
        try:
            hw = make_devices()
            docs = []

            def plan(hw=hw):
                yield from bps.open_run()
                yield from bps.checkpoint()
                yield Msg("pause")
                yield from bps.close_run()
                return "the end"

            with pytest.raises(RunEngineInterrupted):
                RE(plan(), lambda name, doc, docs=docs: docs.append((name, doc)))
            result = RE.abort("enough") if action == "abort" else getattr(RE, action)()
        finally:
            RE._call_returns_result = False
        norm = Normalizer()
        normalize(docs, norm)
        exceptions.append(result.exception)
        results.append(
            (
                norm.value(result.run_start_uids),
                result.plan_result
                if action == "resume"
                else result.plan_result is RE.NO_PLAN_RETURN,
                result.exit_status,
                result.interrupted,
                result.reason,
                _exception_kind(result.exception),
                normalize(docs)[-1][1]["exit_status"],
            )
        )
    assert results[0] == results[1]
    expected = {
        "abort": (("<uid 0>",), True, "abort", True, "enough"),
        "stop": (("<uid 0>",), True, "success", True, ""),
        "halt": (("<uid 0>",), True, "abort", True, ""),
        "resume": (("<uid 0>",), "the end", "success", False, ""),
    }
    assert results[1][:5] == expected[action]
    theirs, ours = exceptions
    if action == "resume":
        assert theirs is ours is None
    else:
        assert isinstance(ours, BaseException)  # an instance, of the class bluesky gives
        assert isinstance(theirs, type) == (action != "abort")


def test_call_returns_result_when_the_plan_fails(engine_pair):
    """A failing plan raises its exception from the call, with or without results."""
    errors = []
    for RE in engine_pair:
        RE._call_returns_result = True
        try:
            with pytest.raises(ZeroDivisionError) as info:
                RE(_divide_by_zero())
        finally:
            RE._call_returns_result = False
        errors.append(str(info.value))
    assert errors[0] == errors[1]


def _divide_by_zero():
    yield from bps.open_run()
    yield from bps.null()
    return 1 / 0


def test_every_preprocessor_is_compared_or_explained():
    public = {
        name
        for name in dir(bpp)
        if name.endswith(("_wrapper", "_decorator")) and not name.startswith("_")
    } | {"SupplementalData", "msg_mutator", "plan_mutator", "pchain"}
    explained = {
        "fly_during_wrapper": "flyers, with runengine/commands/flyers.py",
        "fly_during_decorator": "flyers, with runengine/commands/flyers.py",
        "contingency_decorator": "the same code as contingency_wrapper",
        "finalize_decorator": "compared as finalize_decorator_on_failure",
        "stub_decorator": "the same code as stub_wrapper",
        "subs_decorator": "compared",
        "suspend_decorator": "the same code as suspend_wrapper",
        "suspend_wrapper": "compared as suspend_wrapper_untripped",
        "inject_md_wrapper": "compared as inject_md",
        "make_decorator": "makes the decorators above from the wrappers",
        "lazily_stage_decorator": "the same code as lazily_stage_wrapper",
        "relative_set_decorator": "used by bps.mvr (test_compat_stubs) and rel_* plans",
        "msg_mutator": "compared",
        "plan_mutator": "compared",
        "pchain": "compared",
        "SupplementalData": "compared, and as an engine preprocessor",
        "stage_wrapper": "used by every plan in bluesky.plans",
        "monitor_during_wrapper": "the same code as monitor_during_decorator",
        "print_summary_wrapper": "compared",
        "set_run_key_decorator": "compared in set_run_key_wrapper",
        "reset_positions_decorator": "compared as reset_positions_decorator_some",
        "baseline_decorator": "compared",
        "configure_count_time_decorator": "compared",
        "inject_md_decorator": "compared",
        "run_decorator": "compared",
    }
    assert public - set(PREPROCESSED) - set(explained) == set()
