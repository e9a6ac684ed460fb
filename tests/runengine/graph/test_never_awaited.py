"""No "coroutine ... was never awaited": a one-shot body that will not run is closed.

The seed notebook gives actions coroutine objects (``Action(mycoro(1))``). When such an action
does not run (skipped, never started, cancelled before it started, its graph cut short by a
failure, a timeout, ``end()``, a cancel or an abort), the graph closes the coroutine.

Each case builds its graph in a function of its own and returns only the coroutines' states,
so that nothing references them any more when :func:`no_never_awaited` collects garbage: an
unclosed coroutine would then warn. ``test_the_harness_sees_a_leak`` proves it would.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import threading
import time
import warnings

import bluesky.plan_stubs as bps
import pytest

from runengine import RunEngineInterrupted
from runengine.graph import (
    CANCELLED,
    DONE,
    FAILED,
    IDLE,
    SKIPPED,
    TIMEOUT,
    Action,
    ActionGraph,
    GraphFailed,
    GraphTimeout,
)
from runengine.plans.graph import run_graph

SLOW = 30.0  # never reached: a test that waited for it fails its `< SOON` bound
SOON = SLOW / 3  # generous under load, yet far from SLOW


async def mycoro(delay: float, value: object = None) -> object:
    await asyncio.sleep(delay)
    return value


async def broken() -> None:
    await asyncio.sleep(0.01)
    raise ValueError("broken")


@contextlib.contextmanager
def no_never_awaited():
    """Fail if a "was never awaited" RuntimeWarning is emitted inside (garbage collected)."""
    gc.collect()  # what earlier tests left is not this test's
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
        gc.collect()
    leaks = [str(w.message) for w in caught if "never awaited" in str(w.message)]
    assert leaks == []


def states(*coros) -> list[str]:
    return [inspect.getcoroutinestate(c) for c in coros]


def test_the_harness_sees_a_leak():
    with pytest.raises(AssertionError, match="never awaited"):
        with no_never_awaited():
            mycoro(1)  # made, dropped, never awaited


def _skipped() -> tuple:
    dependant_coro, inner_coro = mycoro(0.01), mycoro(0.01)
    bad = Action(broken, label="bad", critical=False)
    dependant = Action(dependant_coro, label="dependant", requires=bad)
    nested = ActionGraph(Action(inner_coro, label="inner"), label="nested", requires=bad)
    result = ActionGraph(bad, dependant, nested).run()
    return [result.states[a] for a in (bad, dependant, nested)], states(dependant_coro, inner_coro)


def test_skipped_actions_close_their_coroutines():
    with no_never_awaited():
        ended, closed = _skipped()
    assert ended == [FAILED, SKIPPED, SKIPPED]
    assert closed == ["CORO_CLOSED", "CORO_CLOSED"]


def _critical_failure() -> tuple:
    never_coro, slow_coro = mycoro(0.01), mycoro(SLOW)
    bad = Action(broken, label="bad")
    never = Action(never_coro, label="never", requires=bad)
    slow = Action(slow_coro, label="slow")
    with pytest.raises(GraphFailed) as info:
        ActionGraph(bad, never, slow).run()
    ended = [info.value.result.states[a] for a in (never, slow)]
    return ended, states(never_coro, slow_coro)


def test_a_critical_failure_closes_what_never_started():
    start = time.monotonic()
    with no_never_awaited():
        ended, closed = _critical_failure()
    assert time.monotonic() - start < SOON
    assert ended == [IDLE, CANCELLED]
    assert closed == ["CORO_CLOSED", "CORO_CLOSED"]  # the running one was cancelled inside


def _timed_out() -> tuple:
    waiting_coro, after_coro = mycoro(0.01), mycoro(0.01)
    first = Action(mycoro, SLOW, label="first")
    waiting = Action(waiting_coro, label="waiting")  # waits for the window slot
    after = Action(after_coro, label="after", requires=first)
    with pytest.raises(GraphTimeout) as info:
        ActionGraph(first, waiting, after, window=1).orchestrate(timeout=0.05)
    ended = [info.value.result.states[a] for a in (first, waiting, after)]
    return ended, states(waiting_coro, after_coro)


def test_a_timeout_closes_what_waited_for_a_slot_and_what_never_started():
    with no_never_awaited():
        ended, closed = _timed_out()
    assert ended == [TIMEOUT, TIMEOUT, IDLE]
    assert closed == ["CORO_CLOSED", "CORO_CLOSED"]


def _cancelled_from_outside() -> tuple:
    after_coro = mycoro(0.01)
    first = Action(mycoro, SLOW, label="first")
    g = ActionGraph(first, Action(after_coro, label="after", requires=first))

    async def main():
        task = asyncio.ensure_future(g.co_run())
        while first.state != "running":
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 2)

    asyncio.run(main())
    return [a.state for a in g.actions], states(after_coro)


def test_a_graph_cancelled_from_outside_closes_what_never_started():
    with no_never_awaited():
        ended, closed = _cancelled_from_outside()
    assert ended == [CANCELLED, IDLE] and closed == ["CORO_CLOSED"]


def _ended() -> tuple:
    after_coro = mycoro(0.01)
    monitor = Action(mycoro, SLOW, label="monitor", forever=True)
    g = ActionGraph(monitor, Action(after_coro, requires=monitor), timeout=SLOW)

    async def main():
        task = asyncio.ensure_future(g.co_run())
        while monitor.state != "running":
            await asyncio.sleep(0.005)
        g.end()
        return await asyncio.wait_for(task, 2)

    assert asyncio.run(main()).why == "ENDED"
    return states(after_coro)


def test_end_closes_what_never_started():
    with no_never_awaited():
        assert _ended() == ["CORO_CLOSED"]


def test_a_closed_one_shot_body_says_so_when_run_again():
    bad = Action(broken, label="bad", critical=False)
    dependant = Action(mycoro(0.01), label="dependant", requires=bad, critical=False)
    g = ActionGraph(bad, dependant)
    g.run()
    g.on_failed_requirement = "run"
    result = g.run()
    assert "closed unrun by an earlier graph run" in str(result.errors[dependant])


def test_an_action_that_ran_is_not_touched():
    with no_never_awaited():
        coro = mycoro(0.01, "v")
        a = Action(coro)
        assert ActionGraph(a).run()[a] == "v"
        assert inspect.getcoroutinestate(coro) == "CORO_CLOSED"  # it ran to its end
        del a, coro


# ---- in a plan -------------------------------------------------------------------------------
def _in_run(graph):
    def plan():
        yield from bps.open_run()
        yield from bps.checkpoint()
        yield from run_graph(graph)
        yield from bps.close_run()

    return plan()


def _interrupted(RE, verb: str) -> tuple:
    """A graph whose first action pauses (or aborts) the engine while the second waits."""
    after_coro = mycoro(0.01, "after")

    async def first():
        if not fired:  # the first run: interrupt it; the resumed one just ends
            fired.append(verb)
            threading.Thread(target=getattr(RE, verb)).start()
            await asyncio.sleep(SLOW)  # cut by the pause or abort

    fired: list = []
    first_action = Action(first, label="first")
    after = Action(after_coro, label="after", requires=first_action)
    g = ActionGraph(first_action, after)
    with pytest.raises(RunEngineInterrupted):
        RE(_in_run(g))
    return g, after, after_coro


def test_abort_in_a_plan_closes_what_never_started(RE):
    with no_never_awaited():
        g, after, coro = _interrupted(RE, "abort")
        assert RE.state == "idle" and after.state == IDLE
        assert inspect.getcoroutinestate(coro) == "CORO_CLOSED"
        del g, after, coro


def test_pause_keeps_it_for_the_resume_which_runs_it(RE):
    with no_never_awaited():
        g, after, coro = _interrupted(RE, "request_pause")
        assert RE.state == "paused"
        assert inspect.getcoroutinestate(coro) == "CORO_CREATED"  # kept: a resume runs it
        RE.resume()
        assert after.state == DONE and after.result() == "after"
        del g, after, coro


def test_pause_then_abort_closes_it_when_the_call_ends(RE):
    with no_never_awaited():
        g, after, coro = _interrupted(RE, "request_pause")
        assert inspect.getcoroutinestate(coro) == "CORO_CREATED"
        RE.abort()
        assert RE.state == "idle"
        assert inspect.getcoroutinestate(coro) == "CORO_CLOSED"
        del g, after, coro
