"""Actions holding hardware locks: FIFO service, LockTimeout naming the holder, release always."""

from __future__ import annotations

import asyncio

import pytest

locks = pytest.importorskip("runengine.locks")

from runengine.graph import Action, ActionGraph, GraphFailed  # noqa: E402


def test_actions_contending_for_one_lock_are_served_in_order():
    lock = locks.HardwareLock("mono")
    log: list = []

    async def use(name):
        log.append(("in", name, lock.job))
        await asyncio.sleep(0.02)
        log.append(("out", name))

    actions = [Action(use, n, label=n, locks=[lock]) for n in "abcd"]
    assert ActionGraph(*actions).run().ok
    assert log == [x for n in "abcd" for x in (("in", n, n), ("out", n))]
    assert not lock.locked


def test_a_lock_timeout_names_the_holder():
    lock = locks.HardwareLock("mono")

    async def hold():
        await asyncio.sleep(0.3)

    long = Action(hold, label="long", locks=[lock])
    short = Action(hold, label="short", locks=[(lock, 0.05)], critical=False)
    result = ActionGraph(long, short).run()
    err = short.raised_exception()
    assert isinstance(err, locks.LockTimeout)
    assert err.holder.job == "long" and "'long'" in str(err)
    assert result.states[long] == "done"
    assert not lock.locked


def test_locks_are_released_when_the_graph_fails():
    lock = locks.HardwareLock("mono")

    async def hold():
        await asyncio.sleep(5)

    async def boom():
        await asyncio.sleep(0.05)
        raise ValueError("boom")

    g = ActionGraph(Action(hold, label="holder", locks=[lock]), Action(boom, label="boom"))
    with pytest.raises(GraphFailed):
        g.run()
    assert not lock.locked
