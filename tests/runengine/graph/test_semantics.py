"""Standalone action graphs: the asynciojobs semantics we keep, and the bugs we do not."""

from __future__ import annotations

import asyncio
import time

import pytest

from runengine.graph import (
    CANCELLED,
    DONE,
    FAILED,
    IDLE,
    SKIPPED,
    TIMEOUT,
    Action,
    ActionGraph,
    ActionTimeout,
    GraphCycleError,
    GraphFailed,
    GraphTimeout,
    Sequence,
    SubPlan,
    SubPlanError,
)

SLOW = 30.0  # never reached: a test that waited for it fails its `< SOON` bound
SOON = SLOW / 3  # generous under load, yet far from SLOW


class Recorder:
    """Bodies that log when they start and end."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []

    def sleep(self, name: str, delay: float = 0.01, value: object = None):
        async def body():
            self.log.append(("start", name))
            await asyncio.sleep(delay)
            self.log.append(("end", name))
            return name if value is None else value

        return body

    def fail(self, name: str, exc: BaseException, delay: float = 0.01):
        async def body():
            self.log.append(("start", name))
            await asyncio.sleep(delay)
            raise exc

        return body

    def started(self) -> list[str]:
        return [name for what, name in self.log if what == "start"]


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


# ---- 1. order, requirements, cycles --------------------------------------------------------
def test_diamond_runs_in_topological_order(rec):
    top = Action(rec.sleep("top"), label="top")
    left = Action(rec.sleep("left", 0.05), label="left", requires=top)
    right = Action(rec.sleep("right"), label="right", requires=[top, None])
    bottom = Action(rec.sleep("bottom"), label="bottom", requires=[[left], (right,)])
    bottom.requires(bottom)  # self-requirements are ignored
    g = ActionGraph(bottom, right, left, top)
    result = g.run()
    assert result.ok and result.why == "FINE"
    log = rec.log
    assert log.index(("end", "top")) < log.index(("start", "left"))
    assert log.index(("end", "top")) < log.index(("start", "right"))
    assert log.index(("end", "left")) < log.index(("start", "bottom"))
    assert log.index(("end", "right")) < log.index(("start", "bottom"))
    assert [a.label for a in g.topological_order()] == ["top", "left", "right", "bottom"]
    assert bottom.required.keys() == {left, right}
    assert result[bottom] == "bottom"


def test_sequence_chains_requirements(rec):
    a, b, c = (Action(rec.sleep(n), label=n) for n in "abc")
    ActionGraph(Sequence(a, b, c)).run()
    assert rec.started() == ["a", "b", "c"]


def test_check_rejects_a_cycle_before_running(rec):
    a = Action(rec.sleep("a"), label="a")
    b = Action(rec.sleep("b"), label="b", requires=a)
    a.requires(b)
    g = ActionGraph(a, b)
    with pytest.raises(GraphCycleError, match=r"a -> b -> a|b -> a -> b"):
        g.check()
    with pytest.raises(GraphCycleError):
        g.run()
    assert rec.log == []
    assert "a" in g.list_safe() and "b" in g.list_safe()


def test_requirements_outside_the_graph_are_ignored(rec):
    outside = Action(rec.sleep("outside"))
    inside = Action(rec.sleep("inside"), requires=outside)
    assert ActionGraph(inside).run().ok
    assert rec.started() == ["inside"]


# ---- 2. failures ---------------------------------------------------------------------------
def test_critical_failure_cancels_siblings_runs_shutdown_once_and_raises(rec):
    shutdowns = []
    boom = Action(rec.fail("boom", ValueError("boom")), label="boom")
    slow = Action(rec.sleep("slow", SLOW), label="slow", shutdown=lambda: shutdowns.append("slow"))
    later = Action(rec.sleep("later"), label="later", requires=slow)

    async def async_hook():
        shutdowns.append("later")

    later.shutdown = async_hook
    g = ActionGraph(boom, slow, later)
    start = time.monotonic()
    with pytest.raises(GraphFailed) as info:
        g.run()
    assert time.monotonic() - start < SOON
    assert isinstance(info.value.exception, ValueError)
    assert info.value.__cause__ is info.value.exception
    result = info.value.result
    assert not result.ok and result.states == {boom: FAILED, slow: CANCELLED, later: IDLE}
    assert sorted(shutdowns) == ["later", "slow"]  # once each, also for never-started ones
    assert g.why().startswith("a CRITICAL action")
    assert g.failed_critical() and not g.failed_time_out()


def test_non_critical_failure_returns_not_ok_and_skips_dependants(rec):
    bad = Action(rec.fail("bad", KeyError("k")), label="bad", critical=False)
    after = Action(rec.sleep("after"), label="after", requires=bad)
    after2 = Action(rec.sleep("after2"), label="after2", requires=after)
    other = Action(rec.sleep("other"), label="other")
    g = ActionGraph(bad, after, after2, other)
    result = g.run()
    assert not result.ok and not result
    assert result.why == "a non-critical action failed"
    assert result.states == {bad: FAILED, after: SKIPPED, after2: SKIPPED, other: DONE}
    assert isinstance(result.errors[bad], KeyError)
    assert not after.is_done() and bad.is_done()


def test_on_failed_requirement_run_reproduces_asynciojobs(rec):
    bad = Action(rec.fail("bad", KeyError("k")), label="bad", critical=False)
    after = Action(rec.sleep("after"), label="after", requires=bad)
    result = ActionGraph(bad, after, on_failed_requirement="run").run()
    assert result.states[after] == DONE
    assert rec.started() == ["bad", "after"]


def test_non_critical_graph_returns_instead_of_raising(rec):
    boom = Action(rec.fail("boom", ValueError("boom")), label="boom")
    result = ActionGraph(boom, critical=False).run()
    assert not result.ok and result.why.startswith("a CRITICAL action")


def test_shutdown_errors_are_collected(rec):
    def bad_hook():
        raise OSError("cannot close")

    async def slow_hook():
        await asyncio.sleep(5)

    a = Action(rec.sleep("a"), shutdown=bad_hook)
    b = Action(rec.sleep("b"), shutdown=slow_hook)
    g = ActionGraph(a, b, shutdown_timeout=0.1)
    result = g.run()
    assert result.ok
    assert isinstance(result.shutdown_errors[a], OSError)
    assert isinstance(result.shutdown_errors[b], TimeoutError)


# ---- 3. timeouts and forever ---------------------------------------------------------------
def test_graph_timeout_raises_graph_timeout(rec):
    g = ActionGraph(Action(rec.sleep("slow", SLOW), label="slow"), timeout=0.1)
    start = time.monotonic()
    with pytest.raises(GraphTimeout) as info:
        g.run()
    assert time.monotonic() - start < SOON
    assert info.value.result.why == "TIMED OUT after 0.1s" == g.why()
    assert g.failed_time_out()
    assert isinstance(info.value, TimeoutError)


def test_per_action_timeout_fails_only_that_action(rec):
    slow = Action(rec.sleep("slow", SLOW), label="slow", timeout=0.05, critical=False)
    fine = Action(rec.sleep("fine", 0.1), label="fine")
    result = ActionGraph(slow, fine).run()
    assert result.states == {slow: TIMEOUT, fine: DONE}
    assert isinstance(slow.raised_exception(), ActionTimeout)


def test_forever_actions_end_cancelled_when_finite_ones_finish(rec):
    ticks = []

    async def monitor():
        while True:
            ticks.append(1)
            await asyncio.sleep(0.01)

    mon = Action(monitor, label="mon", forever=True)
    work = Action(rec.sleep("work", 0.1), label="work")
    result = ActionGraph(mon, work).run()
    assert result.ok
    assert mon.state == CANCELLED and mon.is_done()
    assert ticks


# ---- 4. the window leak ---------------------------------------------------------------------
def test_window_one_with_a_failing_non_critical_action_does_not_deadlock(rec):
    bad = Action(rec.fail("bad", ValueError("x")), label="bad", critical=False)
    rest = [Action(rec.sleep(f"a{i}"), label=f"a{i}") for i in range(4)]
    g = ActionGraph(bad, *rest, window=1, timeout=5)
    start = time.monotonic()
    result = g.run()
    assert time.monotonic() - start < SOON
    assert result.states[bad] == FAILED
    assert all(a.state == DONE for a in rest)


def test_window_limits_concurrency(rec):
    running, peak = [0], [0]

    async def body():
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        await asyncio.sleep(0.02)
        running[0] -= 1

    ActionGraph(*(Action(body) for _ in range(8)), window=3).run()
    assert peak[0] == 3


# ---- 5. factories: run twice ---------------------------------------------------------------
def test_the_same_graph_runs_twice(rec):
    a = Action(rec.sleep("a"), label="a")
    b = Action(rec.sleep("b"), label="b", requires=a)
    g = ActionGraph(a, b)
    assert g.run().ok and g.run().ok
    assert rec.started() == ["a", "b", "a", "b"]


def test_a_coroutine_object_runs_once_with_a_clear_error(rec):
    a = Action(rec.sleep("a")(), label="a")
    g = ActionGraph(a)
    assert g.run().ok
    with pytest.raises(GraphFailed, match="runs only once"):
        g.run()


def test_check_rejects_forever_only_graphs_without_timeout(rec):
    async def forever():
        await asyncio.sleep(10)

    g = ActionGraph(Action(forever, forever=True))
    with pytest.raises(ValueError, match="every action is forever"):
        g.run()
    g.graph_timeout = 0.05
    with pytest.raises(GraphTimeout):
        g.run()


def test_empty_graph_is_fine():
    assert ActionGraph().run().ok


# ---- 6. nesting ----------------------------------------------------------------------------
def test_nested_critical_graph_propagates_the_inner_exception_type(rec):
    inner = ActionGraph(Action(rec.fail("in", ZeroDivisionError("z")), label="in"), label="sub")
    sibling = Action(rec.sleep("sib", 5), label="sib")
    outer = ActionGraph(inner, sibling, label="outer")
    with pytest.raises(GraphFailed) as info:
        outer.run()
    assert isinstance(info.value.exception, ZeroDivisionError)
    assert isinstance(inner.raised_exception(), ZeroDivisionError)
    assert sibling.state == CANCELLED


def test_nested_non_critical_graph_only_fails_itself(rec):
    inner = ActionGraph(
        Action(rec.fail("in", ZeroDivisionError("z")), label="in"), label="sub", critical=False
    )
    after = Action(rec.sleep("after"), label="after", requires=inner)
    other = Action(rec.sleep("other"), label="other")
    result = ActionGraph(inner, after, other, label="outer").run()
    assert not result.ok
    assert result.states == {inner: FAILED, after: SKIPPED, other: DONE}
    assert isinstance(inner.raised_exception(), GraphFailed)


def test_nested_graph_runs_between_its_requirements(rec):
    first = Action(rec.sleep("first"), label="first")
    inner = ActionGraph(
        Action(rec.sleep("i1"), label="i1"), Action(rec.sleep("i2"), label="i2"), requires=first
    )
    last = Action(rec.sleep("last"), label="last", requires=inner)
    assert ActionGraph(first, inner, last).run().ok
    assert rec.started()[0] == "first" and rec.started()[-1] == "last"


# ---- the rest ------------------------------------------------------------------------------
def test_sync_callables_and_values(rec):
    a = Action(lambda x: x * 2, 21, label="double")
    assert ActionGraph(a).run()[a] == 42


def test_sub_plans_need_a_run_engine():
    def plan():
        yield from ()

    g = ActionGraph(SubPlan(lambda: []), critical=False)
    result = g.run()
    assert isinstance(next(iter(result.errors.values())), SubPlanError)
    assert Action(plan).kind == "plan"


def test_result_before_done_raises(rec):
    a = Action(rec.sleep("a"))
    with pytest.raises(ValueError, match="has no result"):
        a.result()


def test_run_from_a_running_loop_asks_for_co_run(rec):
    g = ActionGraph(Action(rec.sleep("a")))

    async def main():
        with pytest.raises(RuntimeError, match="co_run"):
            g.run()
        return await g.co_run()

    assert asyncio.run(main()).ok


def test_listeners_see_every_transition_exactly_once(rec):
    a = Action(rec.sleep("a"), label="a")
    bad = Action(rec.fail("bad", ValueError("v")), label="bad", critical=False)
    skipped = Action(rec.sleep("s"), label="s", requires=bad)
    inner = ActionGraph(Action(rec.sleep("i"), label="i"), label="inner")
    g = ActionGraph(a, bad, skipped, inner)
    seen = []
    g.subscribe(seen.append)
    g.run()
    by_label: dict = {}
    for event in seen:
        by_label.setdefault(event.label, []).append(event.state)
    assert by_label == {
        "a": ["scheduled", "running", "done"],
        "bad": ["scheduled", "running", "failed"],
        "s": ["skipped"],
        "inner": ["scheduled", "running", "done"],
        "i": ["scheduled", "running", "done"],
    }
    failed = next(e for e in seen if e.state == "failed")
    assert isinstance(failed.exc, ValueError) and failed.action_id == bad.id
    seen.clear()
    g.run()  # a second run first returns every action to idle, once
    assert [e.state for e in seen if e.label == "a"] == ["idle", "scheduled", "running", "done"]
