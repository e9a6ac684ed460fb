"""Action graphs inside plans: ``run_graph``, and graphs run alongside a run.

``Msg('run_graph', graph, run=None, status_stream='action_status')`` runs the graph's actions
concurrently (sub-plans through the engine's own handlers) and returns its ``GraphResult``; a
critical failure raises ``GraphFailed`` (``GraphTimeout``) into the plan.

It is one non-rewindable unit: it begins and ends with a checkpoint, so a resume after a pause
re-sends it (and nothing before it), and the graph re-runs only its incomplete actions. A
deferred pause waits for the next checkpoint message after it. A pause, stop, abort, halt or
panic cancels every action and awaits them all before the engine goes on.

``Msg('start_graph', graph, run=None)`` starts a graph in the background of the call (forever
monitors bound to a run); ``Msg('end_graph', graph)`` cancels what still runs and returns its
result. Both are idempotent, so a replay after a rewind does no harm. A background graph keeps
running while the plan is paused and is cancelled when the call ends, however it ends.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from bluesky.utils import IllegalMessageSequence, Msg

from ..commands.spec import command
from .graph import ActionGraph
from .subplans import PlanContext, wait_quietly

if TYPE_CHECKING:
    from ..call import CallContext

_POLL = 0.05  # how often a background graph looks whether its call has ended


def _graph_of(msg: Msg) -> ActionGraph:
    graph = msg.obj
    if not isinstance(graph, ActionGraph):
        raise TypeError(f"Msg({msg.command!r}) needs an ActionGraph, not {graph!r}")
    return graph


def _recheckpoint(call: CallContext, msg: Msg | None) -> None:
    """Make this the checkpoint a resume returns to (and re-sends ``msg`` from)."""
    call.checkpoint()
    cache = call.cache
    if msg is not None and cache.msgs is not None and cache.rewindable:
        cache.msgs.append(msg)


@command("run_graph", subplan="nest an ActionGraph in the graph instead")
async def run_graph(call: CallContext, msg: Msg) -> Any:
    """Run an ActionGraph's actions concurrently; returns its GraphResult."""
    graph = _graph_of(msg)
    for bundle in call.runs.values():
        if bundle.bundle_name is not None:
            raise IllegalMessageSequence("Cannot 'run_graph' after 'create' and before 'save'")
    _recheckpoint(call, msg)
    stream = msg.kwargs.get("status_stream", "action_status")
    ctx = PlanContext(call, msg.run, stream, graph.text_label)
    try:
        result = await graph._co_run(ctx)
    except asyncio.CancelledError:
        # Interrupted: events emitted so far stay emitted, and their seq_nums stay taken.
        for bundle in call.runs.values():
            bundle.checkpoint()
        raise
    except BaseException:
        _recheckpoint(call, None)
        raise
    _recheckpoint(call, None)
    return result


def _background(call: CallContext) -> dict:
    return call.slot("background graphs", dict)


async def _supervise(call: CallContext, graph: ActionGraph, ctx: PlanContext) -> Any:
    """Run ``graph`` until it ends or its engine call does (however the call ends)."""
    task = asyncio.ensure_future(graph._co_run(ctx))
    try:
        while not task.done():
            if call.finished:  # the call ended without end_graph (a halt, a crash)
                graph.end()
                await wait_quietly(task)
                return None
            await asyncio.wait((task,), timeout=_POLL)
        return await task
    finally:
        if not task.done():
            task.cancel()
            await wait_quietly(task)


@command("start_graph")
def start_graph(call: CallContext, msg: Msg) -> None:
    """Start an ActionGraph in the background of this call (see 'end_graph')."""
    graph = _graph_of(msg)
    running = _background(call).get(graph)
    if running is not None and not running.done():
        return  # replayed after a rewind: it runs already
    graph.check(alongside=True)
    stream = msg.kwargs.get("status_stream", "action_status")
    ctx = PlanContext(call, msg.run, stream, graph.text_label, alongside=True)
    _background(call)[graph] = asyncio.ensure_future(_supervise(call, graph, ctx))


@command("end_graph")
async def end_graph(call: CallContext, msg: Msg) -> Any:
    """End a background ActionGraph: cancel what still runs; returns its GraphResult."""
    graph = _graph_of(msg)
    task = _background(call).pop(graph, None)
    if task is None:
        return graph.last_result
    graph.end()
    return await task
