"""Plan stubs for action graphs: run_graph, and graphs bound to a run (alongside_wrapper)."""

from __future__ import annotations

import asyncio
import time

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
import pytest
from bluesky.utils import RunEngineInterrupted
from ophyd.sim import SynAxis

from runengine import RunEngine
from runengine.graph import CANCELLED, Action, ActionGraph, SubPlan
from runengine.plans.graph import alongside_wrapper, run_alongside, run_graph
from tests.runengine.side_by_side import validate_documents
from tests.timing import later


@pytest.fixture
def RE():
    engine = RunEngine({}, context_managers=[])
    yield engine
    if not engine.state.is_idle:
        engine.halt()


@pytest.fixture
def docs(RE):
    collected: list = []
    RE.subscribe(lambda name, doc: collected.append((name, doc)))
    return collected


class Monitor:
    """A forever action recording when it ticks, and when it was cancelled."""

    def __init__(self) -> None:
        self.ticks: list[float] = []
        self.cancelled_at: float | None = None

    async def __call__(self) -> None:
        try:
            while True:
                self.ticks.append(time.time())
                await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            self.cancelled_at = time.time()
            raise


def window(docs):
    start = next(d["time"] for n, d in docs if n == "start")
    stop = next(d["time"] for n, d in docs if n == "stop")
    return start, stop


def test_run_graph_stub_yields_one_message():
    g = ActionGraph()
    msg = next(run_graph(g))
    assert msg.command == "run_graph" and msg.obj is g
    assert msg.kwargs == {"status_stream": "action_status"}


def test_alongside_monitors_live_exactly_as_long_as_the_run(RE, docs):
    mon = Monitor()
    g = ActionGraph(Action(mon, label="vacuum", forever=True))

    def plan():
        yield from bps.sleep(0.1)
        yield from bpp.run_wrapper(bps.sleep(0.2))
        yield from bps.sleep(0.1)

    RE(alongside_wrapper(plan(), g))
    start, stop = window(docs)
    assert mon.ticks and start <= mon.ticks[0] and mon.ticks[-1] <= stop
    assert mon.cancelled_at is not None and mon.cancelled_at <= stop
    assert g.actions[0].state == CANCELLED and g.last_result.ok
    validate_documents(docs)
    states = [d["data"]["state"] for n, d in docs if n == "event"]
    assert states == ["scheduled", "running", "cancelled"]


def test_alongside_monitors_end_when_the_plan_fails(RE, docs):
    mon = Monitor()
    g = ActionGraph(Action(mon, label="vacuum", forever=True))

    def failing():
        yield from bps.sleep(0.1)
        raise ValueError("plan failed")

    with pytest.raises(ValueError, match="plan failed"):
        RE(alongside_wrapper(bpp.run_wrapper(failing()), g))
    _, stop = window(docs)
    assert mon.cancelled_at is not None and mon.cancelled_at <= stop
    assert [d["exit_status"] for n, d in docs if n == "stop"] == ["fail"]
    validate_documents(docs)


def test_alongside_monitors_end_even_on_halt(RE, docs):
    mon = Monitor()
    g = ActionGraph(Action(mon, label="vacuum", forever=True))
    later(0.15, RE.halt)
    with pytest.raises(RunEngineInterrupted):
        RE(alongside_wrapper(bpp.run_wrapper(bps.sleep(5)), g))
    deadline = time.monotonic() + 2
    while mon.cancelled_at is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert mon.cancelled_at is not None


def test_monitors_keep_running_through_a_pause(RE, docs):
    mon = Monitor()
    g = ActionGraph(Action(mon, label="vacuum", forever=True))

    def plan():
        yield from bps.checkpoint()
        yield from bps.sleep(0.3)

    later(0.1, RE.request_pause)
    with pytest.raises(RunEngineInterrupted):
        RE(alongside_wrapper(bpp.run_wrapper(plan()), g))
    before = len(mon.ticks)
    time.sleep(0.1)
    assert len(mon.ticks) > before  # still watching while paused
    RE.resume()
    assert mon.cancelled_at is not None
    validate_documents(docs)


def test_run_alongside_binds_a_graph_to_every_plan(RE):
    mon = Monitor()
    g = ActionGraph(Action(mon, label="vacuum", forever=True))
    preprocessor = run_alongside(RE, g)
    RE(bpp.run_wrapper(bps.sleep(0.05)))
    first = len(mon.ticks)
    RE(bpp.run_wrapper(bps.sleep(0.05)))
    assert 0 < first < len(mon.ticks)
    RE.preprocessors.remove(preprocessor)


def test_sub_plans_are_refused_alongside(RE):
    motor = SynAxis(name="motor")
    g = ActionGraph(SubPlan(bps.mv, motor, 1), critical=False)
    RE(alongside_wrapper(bpp.run_wrapper(bps.sleep(0.05)), g))
    assert "alongside" in str(g.actions[0].raised_exception())
