"""GraphMonitor: every transition exactly once, from a graph or from the engine's documents."""

from __future__ import annotations

import asyncio
import io

import bluesky.plan_stubs as bps
from rich.console import Console

from runengine import RunEngine
from runengine.callbacks.graph_monitor import GraphMonitor
from runengine.graph import Action, ActionGraph
from runengine.plans.graph import run_graph


async def ok():
    await asyncio.sleep(0.01)


async def bad():
    await asyncio.sleep(0.01)
    raise ValueError("bad")


def build() -> ActionGraph:
    a = Action(ok, label="a")
    b = Action(bad, label="b", critical=False)
    c = Action(ok, label="c", requires=b)
    return ActionGraph(a, b, c, label="g")


def test_monitor_of_a_graph_sees_every_transition_once():
    g = build()
    direct: list = []
    g.subscribe(lambda e: direct.append((e.action_id, e.label, e.state)))
    out = io.StringIO()
    monitor = GraphMonitor(g, console=Console(file=out, width=100, force_terminal=False))
    g.run()
    monitor.stop()
    assert monitor.transitions == direct
    assert monitor.stats() == "3D + 0R + 0I = 3"
    lines = monitor.lines()
    assert [line.split()[:4] for line in lines] == [
        ["☉", "1", "a", "done"],
        ["★", "2", "b", "failed"],
        ["⊘", "3", "c", "skipped"],
    ]
    assert "ValueError('bad')" in lines[1]
    assert "3D + 0R + 0I = 3" in out.getvalue() and "skipped" in out.getvalue()


def test_monitor_as_a_run_engine_subscriber():
    RE = RunEngine({}, context_managers=[])
    g = build()
    direct: list = []
    g.subscribe(lambda e: direct.append((e.action_id, e.label, e.state)))
    monitor = GraphMonitor(live=False, unicode=False).attach(RE)

    def plan():
        yield from bps.open_run()
        yield from run_graph(g)
        yield from bps.close_run()

    RE(plan())
    monitor.detach()
    assert monitor.transitions == direct and len(direct) == 7
    assert monitor.text().splitlines()[0] == "3D + 0R + 0I = 3"
    assert monitor.lines()[2].split()[:4] == ["-", "3", "c", "skipped"]
