"""``orchestrate(timeout=...)``: the whole graph gets at most that long (asynciojobs' meaning).

Then what still runs (or waits for a window slot) is cancelled and ends TIMEOUT, forever
actions end CANCELLED, the shutdown hooks run, and the result says which actions timed out.
Every wait is bounded: a slow body sleeps at most 5 s, and is always cut well before.
"""

from __future__ import annotations

import asyncio
import math
import time

import bluesky.plan_stubs as bps
import pytest

from runengine.graph import (
    CANCELLED,
    DONE,
    IDLE,
    TIMEOUT,
    Action,
    ActionGraph,
    ActionTimeout,
    Engine,
    GraphTimeout,
)
from runengine.plans.graph import run_graph

SLOW = 30.0  # never reached: a test that waited for it fails its `< SOON` bound
SOON = SLOW / 3  # generous under load, yet far from SLOW


async def sleep(delay: float, value: object = None) -> object:
    await asyncio.sleep(delay)
    return value


def test_orchestrate_accepts_a_timeout_and_returns_true_in_time():
    e = Engine(Action(sleep, 0.01, "a"), Action(sleep, 0.02, "b"))
    assert e.orchestrate(timeout=1) is True
    assert e.why() == "FINE"


def test_orchestrate_timeout_cuts_the_graph_and_says_which_timed_out():
    closed = []
    quick = Action(sleep, 0.01, "q", label="quick")
    slow = Action(sleep, SLOW, label="slow", shutdown=lambda: closed.append("slow"))
    watch = Action(sleep, SLOW, label="watch", forever=True)
    after = Action(sleep, 0.01, label="after", requires=slow)
    g = Engine(quick, slow, watch, after)
    start = time.monotonic()
    with pytest.raises(GraphTimeout) as info:
        g.orchestrate(timeout=0.1)
    took = time.monotonic() - start
    assert 0.1 <= took < SOON
    result = info.value.result
    assert result.states == {quick: DONE, slow: TIMEOUT, watch: CANCELLED, after: IDLE}
    assert result.timed_out == [slow]
    assert isinstance(result.errors[slow], ActionTimeout)
    assert "'slow' was still running" in str(result.errors[slow])
    assert "(0.1s)" in str(result.errors[slow])
    assert result.why == g.why() == "TIMED OUT after 0.1s" and g.failed_time_out()
    assert str(info.value) == "TIMED OUT after 0.1s (timed out: slow)"
    assert isinstance(info.value, TimeoutError)
    assert closed == ["slow"]  # shutdowns ran
    assert result[quick] == "q"
    assert g.list().splitlines()[1].startswith("⚠★  ☓")  # slow: raised, ended


def test_a_non_critical_graph_returns_false():
    g = Engine(Action(sleep, SLOW, label="slow"), critical=False)
    start = time.monotonic()
    assert g.orchestrate(timeout=0.05) is False
    assert time.monotonic() - start < SOON
    assert g.why() == "TIMED OUT after 0.05s"
    assert g.last_result.timed_out == [g.actions[0]]


def test_the_timeout_argument_bounds_one_run_only():
    g = ActionGraph(Action(sleep, 0.2, label="a"), timeout=0.05)
    assert g.run(timeout=None).ok  # lifted for this run
    assert g.run(timeout=1).ok
    assert g.graph_timeout == 0.05
    with pytest.raises(GraphTimeout):
        g.run()  # its own timeout again
    assert g.why() == "TIMED OUT after 0.05s"


def test_actions_waiting_for_a_window_slot_time_out_too():
    first = Action(sleep, SLOW, label="first")
    waiting = Action(sleep, 0.01, label="waiting")
    g = ActionGraph(first, waiting, window=1, critical=False)
    result = g.run(timeout=0.05)
    assert result.states == {first: TIMEOUT, waiting: TIMEOUT}
    assert "was still waiting for a window slot" in str(result.errors[waiting])


def test_a_nested_graph_cut_by_the_outer_timeout_times_out_with_what_ran_inside():
    inner_slow = Action(sleep, SLOW, label="inner slow")
    inner_done = Action(sleep, 0.01, label="inner done")
    inner = ActionGraph(inner_slow, inner_done, label="inner")
    outer = ActionGraph(inner, label="outer", critical=False)
    result = outer.run(timeout=0.1)
    assert result.states == {inner: TIMEOUT}
    assert inner_slow.state == TIMEOUT and inner_done.state == DONE
    assert "timeout of 'outer'" in str(inner_slow.raised_exception())


def test_a_nested_graph_own_timeout_makes_it_time_out():
    inner = ActionGraph(Action(sleep, SLOW, label="slow"), label="inner", timeout=0.05)
    other = Action(sleep, 0.01, label="other")
    outer = ActionGraph(inner, other, critical=False)
    result = outer.run(timeout=2)
    assert result.states == {inner: TIMEOUT, other: DONE}
    assert isinstance(inner.raised_exception(), GraphTimeout)
    assert inner.why() == "TIMED OUT after 0.05s"


def test_forever_only_graphs_run_until_the_given_timeout():
    ticks = []

    async def monitor():
        while True:
            ticks.append(1)
            await asyncio.sleep(0.01)

    g = ActionGraph(Action(monitor, forever=True, label="monitor"))
    with pytest.raises(ValueError, match="every action is forever"):
        g.run()
    with pytest.raises(GraphTimeout) as info:
        g.orchestrate(timeout=0.05)
    assert info.value.result.states == {g.actions[0]: CANCELLED}
    assert info.value.result.timed_out == [] and ticks


def test_timeout_zero_times_out_at_once_and_bad_timeouts_are_refused():
    g = ActionGraph(Action(sleep, SLOW, label="slow"), critical=False)
    start = time.monotonic()
    assert g.orchestrate(timeout=0) is False
    assert time.monotonic() - start < SOON
    quick = ActionGraph(Action(sleep, 0.01))
    assert quick.orchestrate(timeout=math.inf) is True  # no limit
    for bad in (-1, math.nan):
        with pytest.raises(ValueError, match="timeout"):
            quick.orchestrate(timeout=bad)
        with pytest.raises(ValueError, match="timeout"):
            ActionGraph(timeout=bad)
    with pytest.raises(TypeError, match="timeout"):
        quick.orchestrate(timeout="1")


def test_in_a_plan_the_graph_timeout_raises_into_the_plan(RE):
    slow = Action(sleep, SLOW, label="slow")
    quick = Action(sleep, 0.01, label="quick")
    g = ActionGraph(slow, quick, timeout=0.1)
    caught = []

    def plan():
        yield from bps.open_run()
        try:
            yield from run_graph(g)
        except GraphTimeout as err:
            caught.append(err)
        yield from bps.close_run()

    start = time.monotonic()
    RE(plan())
    assert time.monotonic() - start < SOON
    (err,) = caught
    assert err.result.timed_out == [slow] and err.result.states[quick] == DONE
