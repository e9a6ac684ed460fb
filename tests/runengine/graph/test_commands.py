"""Action graphs inside plans on our RunEngine: concurrency, documents, interruptions."""

from __future__ import annotations

import asyncio
import gc
import time

import bluesky.plan_stubs as bps
import pytest
from bluesky.utils import Msg
from ophyd.sim import SynAxis

from runengine import RunEngineInterrupted
from runengine.graph import (
    CANCELLED,
    DONE,
    Action,
    ActionGraph,
    GraphFailed,
    SubPlan,
    SubPlanError,
)
from runengine.plans.graph import run_graph
from tests.runengine.side_by_side import validate_documents
from tests.timing import later


def other_tasks(RE) -> list:
    """Tasks pending on the engine's loop besides the message loop itself."""

    async def probe():
        me = asyncio.current_task()
        return [
            t
            for t in asyncio.all_tasks()
            if t is not me and "Execution.run" not in repr(t.get_coro())
        ]

    return asyncio.run_coroutine_threadsafe(probe(), RE._loop).result(5)


def points(docs, stream):
    """(seq_num, data) of the events of ``stream``."""
    uids = {d["uid"] for n, d in docs if n == "descriptor" and d["name"] == stream}
    return [(d["seq_num"], d["data"]) for n, d in docs if n == "event" and d["descriptor"] in uids]


def steps(motor, n, stream=None):
    """Move ``motor`` to 1..n, recording a point at each."""
    for i in range(1, n + 1):
        yield from bps.mv(motor, i)
        yield from bps.trigger_and_read([motor], name=stream or motor.name)
    return n


def in_run(graph, result=None):
    def plan():
        yield from bps.open_run()
        yield from bps.checkpoint()
        out = yield from run_graph(graph)
        if result is not None:
            result.append(out)
        yield from bps.close_run()

    return plan()


def no_warnings(recwarn) -> None:
    """No "coroutine ... was never awaited" nor any other warning of ours.

    (Event loops of RunEngines made by other tests, collected now, may warn that they were
    never closed: not ours.)"""
    gc.collect()
    ours = [w for w in recwarn if "unclosed event loop" not in str(w.message)]
    assert [str(w.message) for w in ours] == []


# ---- concurrency and documents -----------------------------------------------------------
def test_two_sub_plans_move_two_motors_concurrently(RE, docs, recwarn):
    m1, m2 = SynAxis(name="m1", delay=0.3), SynAxis(name="m2", delay=0.3)
    g = ActionGraph(SubPlan(steps, m1, 3, label="m1 scan"), Action.plan(steps, m2, 2))
    out: list = []
    start = time.monotonic()
    RE(in_run(g, out))
    took = time.monotonic() - start
    longer = 3 * 0.3
    assert took < 1.5 * longer  # alone they take 0.9 s + 0.6 s
    assert out[0].ok and out[0].results == {g.actions[0]: 3, g.actions[1]: 2}
    validate_documents(docs)
    assert [p[1]["m1"] for p in points(docs, "m1")] == [1, 2, 3]
    assert [p[1]["m2"] for p in points(docs, "m2")] == [1, 2]
    assert [p[0] for p in points(docs, "m1")] == [1, 2, 3]
    (stop,) = [d for n, d in docs if n == "stop"]
    assert stop["exit_status"] == "success"
    states = [(d["label"], d["state"]) for _, d in points(docs, "action_status")]
    assert states.count(("m1 scan", "done")) == 1 and ("steps", "done") in states
    no_warnings(recwarn)


def test_bundles_of_concurrent_sub_plans_do_not_interleave(RE, docs):
    m1, m2 = SynAxis(name="m1"), SynAxis(name="m2")

    def slow_point(motor):
        for _ in range(3):
            yield Msg("create", name=motor.name)
            yield Msg("read", motor)
            yield Msg("sleep", None, 0.02)  # the other sub-plan runs meanwhile
            yield Msg("save")

    RE(in_run(ActionGraph(SubPlan(slow_point, m1), SubPlan(slow_point, m2))))
    validate_documents(docs)
    assert len(points(docs, "m1")) == len(points(docs, "m2")) == 3


def test_status_stream_can_be_turned_off(RE, docs):
    def plan():
        yield from bps.open_run()
        yield from run_graph(ActionGraph(Action(asyncio.sleep, 0.01)), status_stream=None)
        yield from bps.close_run()

    RE(plan())
    assert not [d for n, d in docs if n == "descriptor"]
    validate_documents(docs)


def test_graph_outside_a_run_and_its_result(RE):
    seen: list = []
    a = Action(asyncio.sleep, 0.01, "slept", label="a")
    g = ActionGraph(a)
    g.subscribe(seen.append)

    def plan():
        result = yield from run_graph(g)
        return result[a]

    RE._call_returns_result = True
    assert RE(plan()).plan_result == "slept"
    assert [e.state for e in seen] == ["scheduled", "running", "done"]


# ---- failures ------------------------------------------------------------------------------
def test_critical_failure_raises_into_the_plan_which_may_catch_it(RE, docs):
    async def boom():
        raise ValueError("boom")

    m1 = SynAxis(name="m1", delay=0.3)
    g = ActionGraph(Action(boom, label="boom"), SubPlan(steps, m1, 3, label="scan"))
    caught: list = []

    def plan():
        yield from bps.open_run()
        try:
            yield from run_graph(g)
        except GraphFailed as err:
            caught.append(err)
        yield from bps.close_run()

    RE(plan())
    (err,) = caught
    assert isinstance(err.exception, ValueError)
    assert err.result.states[g.actions[1]] == CANCELLED
    validate_documents(docs)


def test_uncaught_failure_fails_the_run(RE, docs):
    async def boom():
        raise ValueError("boom")

    with pytest.raises(GraphFailed):
        RE(in_run(ActionGraph(Action(boom, label="boom"))))
    (stop,) = [d for n, d in docs if n == "stop"]
    assert stop["exit_status"] == "fail"
    assert RE.state == "idle"


@pytest.mark.parametrize(
    "command", ["open_run", "checkpoint_in_bundle", "pause", "stage", "run_graph"]
)
def test_sub_plans_may_not_yield_what_makes_no_sense_concurrently(RE, command):
    motor = SynAxis(name="motor")

    def sub():
        if command == "checkpoint_in_bundle":
            yield Msg("create", name="primary")
            yield Msg("checkpoint")
        elif command == "run_graph":
            yield from run_graph(ActionGraph())
        else:
            yield Msg(command, motor if command == "stage" else None)

    g = ActionGraph(SubPlan(sub, label="naughty"))
    with pytest.raises(GraphFailed) as info:
        RE(in_run(g))
    if command != "checkpoint_in_bundle":
        assert isinstance(info.value.exception, SubPlanError)
        assert "'naughty'" in str(info.value.exception)
        assert f"Msg({command!r})" in str(info.value.exception)


def test_a_checkpoint_in_a_sub_plan_is_local(RE, docs):
    m1 = SynAxis(name="m1")
    RE(in_run(ActionGraph(SubPlan(lambda: bps.checkpoint()), SubPlan(steps, m1, 1))))
    validate_documents(docs)


# ---- interruptions -------------------------------------------------------------------------
class Counting:
    def __init__(self) -> None:
        self.calls = {"quick": 0, "slow": 0}

    async def quick(self):
        self.calls["quick"] += 1
        await asyncio.sleep(0.05)
        return "q"

    async def slow(self):
        self.calls["slow"] += 1
        await asyncio.sleep(1.0)
        return "s"


def test_pause_cancels_and_awaits_everything_and_resume_runs_only_the_rest(RE, docs, recwarn):
    m1, m2 = SynAxis(name="m1", delay=0.3), SynAxis(name="m2", delay=0.3)
    count = Counting()
    g = ActionGraph(
        SubPlan(steps, m1, 3, label="a"),
        SubPlan(steps, m2, 2, label="b"),
        Action(count.quick, label="quick"),
        Action(count.slow, label="slow"),
    )
    out: list = []
    later(0.45, RE.request_pause)
    with pytest.raises(RunEngineInterrupted):
        RE(in_run(g, out))
    assert RE.state == "paused"
    assert other_tasks(RE) == []  # every action task ended
    assert [a.state for a in g.actions] == [CANCELLED, CANCELLED, DONE, CANCELLED]
    RE.resume()
    assert out[0].ok
    assert count.calls == {"quick": 1, "slow": 2}  # done ones do not run again
    validate_documents(docs)
    # No point lost, none taken twice, the motors where the plan put them.
    assert [(s, d["m1"]) for s, d in points(docs, "m1")] == [(1, 1), (2, 2), (3, 3)]
    assert [(s, d["m2"]) for s, d in points(docs, "m2")] == [(1, 1), (2, 2)]
    assert m1.position == 3 and m2.position == 2
    no_warnings(recwarn)


def test_pause_inside_a_sub_plan_bundle_resumes_in_place(RE, docs, recwarn):
    m1 = SynAxis(name="m1")
    taken: list = []

    def slow_points():
        for i in range(3):
            yield Msg("create", name="primary")
            yield Msg("read", m1)
            yield Msg("sleep", None, 0.3)
            yield Msg("save")
            taken.append(i)

    later(0.45, RE.request_pause)  # during the second point's sleep
    with pytest.raises(RunEngineInterrupted):
        RE(in_run(ActionGraph(SubPlan(slow_points))))
    assert taken == [0]
    RE.resume()
    assert taken == [0, 1, 2]
    validate_documents(docs)
    assert [s for s, _ in points(docs, "primary")] == [1, 2, 3]
    no_warnings(recwarn)


def test_resume_restart_runs_everything_again(RE):
    count = Counting()
    g = ActionGraph(
        Action(count.quick, label="quick"), Action(count.slow, label="slow"), resume="restart"
    )
    later(0.3, RE.request_pause)
    with pytest.raises(RunEngineInterrupted):
        RE(in_run(g))
    RE.resume()
    assert count.calls == {"quick": 2, "slow": 2}


@pytest.mark.parametrize(
    ("verb", "exit_status"), [("abort", "abort"), ("stop", "success"), ("halt", "abort")]
)
def test_abort_stop_halt_mid_graph_cancel_and_await_every_action(
    RE, docs, recwarn, verb, exit_status
):
    m1 = SynAxis(name="m1", delay=0.3)
    count = Counting()
    g = ActionGraph(SubPlan(steps, m1, 3, label="a"), Action(count.slow, label="slow"))
    later(0.45, getattr(RE, verb))
    with pytest.raises(RunEngineInterrupted):
        RE(in_run(g))
    assert RE.state == "idle"
    assert other_tasks(RE) == []
    assert [a.state for a in g.actions] == [CANCELLED, CANCELLED]
    assert g.actions[0]._plan_state is None  # nothing will resume it: closed
    (stop,) = [d for n, d in docs if n == "stop"]
    assert stop["exit_status"] == exit_status
    validate_documents(docs)
    no_warnings(recwarn)


def test_pause_from_paused_then_abort_leaves_nothing_behind(RE, docs, recwarn):
    count = Counting()
    g = ActionGraph(Action(count.slow, label="slow"))
    later(0.2, RE.request_pause)
    with pytest.raises(RunEngineInterrupted):
        RE(in_run(g))
    RE.abort()
    assert other_tasks(RE) == []
    assert RE.state == "idle"
    validate_documents(docs)
    no_warnings(recwarn)


def test_panic_mid_graph_cancels_everything(RE, docs):
    count = Counting()
    g = ActionGraph(Action(count.slow, label="slow"))
    later(0.2, RE.panic)
    with pytest.raises(RunEngineInterrupted):
        RE(in_run(g))
    RE.all_is_well()
    assert other_tasks(RE) == []
    assert g.actions[0].state == CANCELLED


def test_deferred_pause_waits_for_the_graph(RE):
    count = Counting()
    g = ActionGraph(Action(count.quick, label="quick"), Action(count.slow, label="slow"))
    later(0.2, RE.request_pause, True)

    def plan():
        yield from bps.open_run()
        yield from bps.checkpoint()
        yield from run_graph(g)
        yield from bps.checkpoint()  # the deferred pause lands here
        yield from bps.close_run()

    with pytest.raises(RunEngineInterrupted):
        RE(plan())
    assert [a.state for a in g.actions] == [DONE, DONE]
    RE.resume()
    assert count.calls == {"quick": 1, "slow": 1}


def test_a_pause_after_the_graph_does_not_run_it_again(RE):
    count = Counting()
    g = ActionGraph(Action(count.quick, label="quick"))

    def plan():
        yield from bps.open_run()
        yield from bps.checkpoint()
        yield from run_graph(g)
        yield from bps.sleep(0.5)  # paused here: the replay starts after the graph
        yield from bps.close_run()

    later(0.3, RE.request_pause)
    with pytest.raises(RunEngineInterrupted):
        RE(plan())
    RE.resume()
    assert count.calls["quick"] == 1


# ---- hardware locks ------------------------------------------------------------------------
@pytest.mark.parametrize("verb", ["request_pause", "abort"])
def test_locks_held_by_actions_are_released_on_pause_and_abort(RE, verb):
    locks = pytest.importorskip("runengine.locks")
    lock = locks.HardwareLock("mono")
    held: list = []

    async def hold():
        held.append(lock.job)
        await asyncio.sleep(0.6)

    g = ActionGraph(Action(hold, label="holder", locks=[lock]))
    later(0.2, getattr(RE, verb))
    with pytest.raises(RunEngineInterrupted):
        RE(in_run(g))
    assert not lock.locked
    if verb == "request_pause":
        RE.resume()  # takes it again, and lets it go at the end
        assert held == ["holder", "holder"]
    assert not lock.locked


def test_bluesky_plan_stubs_are_recognised_as_sub_plans(RE, docs):
    motor = SynAxis(name="motor")
    g = ActionGraph(Action(bps.mv, motor, 2, label="move"))  # bps.mv returns a bluesky Plan
    RE(in_run(g))
    assert motor.position == 2 and g.actions[0].state == DONE
