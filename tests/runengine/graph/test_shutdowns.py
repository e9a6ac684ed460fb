"""A shutdown shared by several actions runs once per graph run, after the last of its users.

The seed notebook's concern: several actions use one ssh connection, which must be closed
once, not from several places at the same time. Every wait here is bounded: a "slow" body
sleeps at most 5 s and is always cut much earlier, each test asserts it ended well before.
"""

from __future__ import annotations

import asyncio
import threading
import time

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


class Connection:
    """One shared resource: ``close`` records when it runs and refuses to run twice at once."""

    def __init__(self, log: list, delay: float = 0.01) -> None:
        self.log = log
        self.delay = delay
        self.closes = 0
        self.closing = 0
        self.overlapped = False
        self.closed = asyncio.Event()

    async def close(self) -> None:
        self.closing += 1
        self.overlapped |= self.closing > 1
        self.log.append("close")
        await asyncio.sleep(self.delay)
        self.closes += 1
        self.closing -= 1
        self.closed.set()


def body(log: list, name: str, delay: float = 0.01, fail: BaseException | None = None):
    async def run():
        log.append(f"start {name}")
        await asyncio.sleep(delay)
        if fail is not None:
            log.append(f"fail {name}")
            raise fail
        log.append(f"end {name}")
        return name

    return run


def test_a_shared_shutdown_runs_once_after_its_last_user_not_at_the_graph_end():
    log: list = []
    ssh = Connection(log)

    async def bystander():
        # Ends only once the connection is closed: at the graph's end it would never be.
        await asyncio.wait_for(ssh.closed.wait(), 2)
        log.append("end bystander")

    users = [
        Action(body(log, n, d), label=n, shutdown=ssh.close) for n, d in [("a", 0.01), ("b", 0.05)]
    ]
    # Each access to ssh.close makes a new bound method: equal ones are one hook.
    assert users[0].shutdown is not users[1].shutdown
    g = ActionGraph(*users, Action(bystander, label="bystander"))
    result = g.run()
    assert result.ok
    assert ssh.closes == 1 and not ssh.overlapped
    assert log.index("close") > log.index("end a") and log.index("close") > log.index("end b")
    assert log.index("close") < log.index("end bystander")


def test_shared_by_nested_graphs_and_the_graph_itself_still_once():
    log: list = []
    ssh = Connection(log)
    inner = ActionGraph(
        Action(body(log, "in1"), label="in1", shutdown=ssh.close),
        Action(body(log, "in2", 0.03), label="in2", shutdown=ssh.close),
        label="inner",
        shutdown=ssh.close,
    )
    after = Action(body(log, "after"), label="after", shutdown=ssh.close, requires=inner)
    g = ActionGraph(inner, after, shutdown=ssh.close)
    assert g.run().ok
    assert ssh.closes == 1
    assert log.index("close") > log.index("end after")  # the graph itself is its last user
    # ...and the next run of the graph closes it once again.
    assert g.run().ok and ssh.closes == 2


def test_distinct_hooks_each_run_once_sync_and_async():
    calls: list = []

    def sync_hook():
        calls.append("sync")

    async def async_hook():
        calls.append("async")

    g = ActionGraph(
        Action(body([], "a"), shutdown=sync_hook),
        Action(body([], "b"), shutdown=sync_hook),
        Action(body([], "c"), shutdown=async_hook),
        Action(body([], "d"), shutdown=lambda: calls.append("lambda")),
    )
    assert g.run().ok
    assert sorted(calls) == ["async", "lambda", "sync"]


def test_one_user_fails_critically_the_hook_runs_once_after_every_user_ended():
    log: list = []
    ssh = Connection(log)
    boom = Action(body(log, "boom", 0.02, ValueError("boom")), label="boom", shutdown=ssh.close)
    slow = Action(body(log, "slow", SLOW), label="slow", shutdown=ssh.close)
    never = Action(body(log, "never"), label="never", shutdown=ssh.close, requires=slow)
    g = ActionGraph(boom, slow, never)
    start = time.monotonic()
    with pytest.raises(GraphFailed) as info:
        g.run()
    assert time.monotonic() - start < SOON
    assert info.value.result.states == {boom: FAILED, slow: CANCELLED, never: IDLE}
    assert ssh.closes == 1 and not ssh.overlapped
    assert log.index("close") > log.index("fail boom")


def test_one_user_fails_non_critically_its_dependant_user_is_skipped_once_still():
    log: list = []
    ssh = Connection(log)
    bad = Action(
        body(log, "bad", fail=KeyError("k")), label="bad", critical=False, shutdown=ssh.close
    )
    dependant = Action(body(log, "dep"), label="dep", shutdown=ssh.close, requires=bad)
    other = Action(body(log, "other", 0.05), label="other", shutdown=ssh.close)
    result = ActionGraph(bad, dependant, other).run()
    assert result.states == {bad: FAILED, dependant: SKIPPED, other: DONE}
    assert ssh.closes == 1
    assert log.index("close") > log.index("end other")


def test_graph_timeout_runs_the_shared_hook_once_also_for_never_started_users():
    log: list = []
    ssh = Connection(log)
    slow = Action(body(log, "slow", SLOW), label="slow", shutdown=ssh.close)
    quick = Action(body(log, "quick"), label="quick", shutdown=ssh.close)
    never = Action(body(log, "never"), label="never", shutdown=ssh.close, requires=slow)
    g = ActionGraph(slow, quick, never)
    start = time.monotonic()
    with pytest.raises(GraphTimeout) as info:
        g.orchestrate(timeout=0.1)
    assert time.monotonic() - start < SOON
    assert info.value.result.states == {slow: TIMEOUT, quick: DONE, never: IDLE}
    assert ssh.closes == 1 and "start never" not in log


def test_cancelled_from_outside_the_shared_hook_runs_once_before_the_cancel_returns():
    log: list = []
    ssh = Connection(log)
    g = ActionGraph(*(Action(body(log, n, SLOW), label=n, shutdown=ssh.close) for n in "ab"))

    async def main():
        task = asyncio.ensure_future(g.co_run())
        while log.count("start a") + log.count("start b") < 2:
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 2)

    start = time.monotonic()
    asyncio.run(main())
    assert time.monotonic() - start < SOON
    assert ssh.closes == 1
    assert [a.state for a in g.actions] == [CANCELLED, CANCELLED]


def test_end_runs_the_shared_hook_once():
    log: list = []
    ssh = Connection(log)

    async def monitor():
        log.append("start monitor")
        await asyncio.sleep(SLOW)

    g = ActionGraph(
        Action(monitor, label="m1", forever=True, shutdown=ssh.close),
        Action(monitor, label="m2", forever=True, shutdown=ssh.close),
        timeout=SLOW,
    )

    async def main():
        task = asyncio.ensure_future(g.co_run())
        while log.count("start monitor") < 2:
            await asyncio.sleep(0.005)
        g.end()
        return await asyncio.wait_for(task, 2)

    assert asyncio.run(main()).ok
    assert ssh.closes == 1


def test_a_failing_or_slow_shared_hook_is_recorded_once_under_its_first_user():
    calls: list = []

    def broken():
        calls.append("broken")
        raise OSError("cannot close")

    async def stuck():
        calls.append("stuck")
        await asyncio.sleep(SLOW)

    a, b = Action(body([], "a"), shutdown=broken), Action(body([], "b"), shutdown=broken)
    c, d = Action(body([], "c"), shutdown=stuck), Action(body([], "d"), shutdown=stuck)
    g = ActionGraph(a, b, c, d, shutdown_timeout=0.05)
    start = time.monotonic()
    result = g.run()
    assert time.monotonic() - start < SOON
    assert result.ok and calls == ["broken", "stuck"]
    assert set(result.shutdown_errors) == {a, c}
    assert isinstance(result.shutdown_errors[a], OSError)
    assert isinstance(result.shutdown_errors[c], TimeoutError)
    assert "shutdown of" in g.debrief()


# ---- in a plan -------------------------------------------------------------------------------
def _in_run(graph):
    import bluesky.plan_stubs as bps

    def plan():
        yield from bps.open_run()
        yield from bps.checkpoint()
        yield from run_graph(graph)
        yield from bps.close_run()

    return plan()


def test_abort_mid_graph_in_a_plan_runs_the_shared_hook_once(RE):
    log: list = []
    ssh = Connection(log)
    started = []

    def user(name):
        async def run():
            started.append(name)
            if len(started) == 2:  # both users run: abort now, from another thread
                threading.Thread(target=RE.abort).start()
            await asyncio.sleep(SLOW)

        return run

    g = ActionGraph(*(Action(user(n), label=n, shutdown=ssh.close) for n in "ab"))
    start = time.monotonic()
    with pytest.raises(RunEngineInterrupted):
        RE(_in_run(g))
    assert time.monotonic() - start < SOON
    assert RE.state == "idle"
    assert ssh.closes == 1 and not ssh.overlapped
    assert [a.state for a in g.actions] == [CANCELLED, CANCELLED]


def test_pause_closes_once_and_the_resumed_run_closes_once_more(RE):
    log: list = []
    ssh = Connection(log)
    runs = []

    async def first():
        runs.append("first")
        if len(runs) == 1:
            threading.Thread(target=RE.request_pause).start()
            await asyncio.sleep(SLOW)  # cut by the pause

    g = ActionGraph(
        Action(first, label="a", shutdown=ssh.close),
        Action(body(log, "b"), label="b", shutdown=ssh.close),
    )
    with pytest.raises(RunEngineInterrupted):
        RE(_in_run(g))
    assert RE.state == "paused" and ssh.closes == 1
    RE.resume()
    assert runs == ["first", "first"] and ssh.closes == 2
