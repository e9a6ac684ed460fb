"""Running one action of a graph: window slot, hardware locks, timeout, body."""

from __future__ import annotations

import asyncio
from typing import Any

from .action import AWAIT, PLAN, Action
from .context import RunContext, settle
from .locking import held
from .result import CANCELLED, DONE, FAILED, RUNNING, TIMEOUT, ActionTimeout, GraphTimeout

__all__ = ["bounded", "cut_by_deadline", "run_action"]


async def run_action(graph: Any, action: Action, window: Any, ctx: RunContext) -> None:
    """Run one action in its task: window slot, locks, body; record how it ended.

    Raises only CancelledError (after marking the action CANCELLED). Cut short by a graph's
    timeout (its own graph's or an enclosing one's), a finite action ends TIMEOUT instead."""
    slot = False
    try:
        if window is not None:
            await window.acquire()
            slot = True
        action.state = RUNNING
        ctx.status(action, RUNNING)
        async with held(action.locks, action.text_label):
            value = await _body(action, ctx)
    except asyncio.CancelledError:
        cutter = None if action.forever else cut_by_deadline(graph)
        if cutter is None:
            action.state = CANCELLED
            ctx.status(action, CANCELLED)
            raise
        was = "running" if action.state == RUNNING else "waiting for a window slot"
        exc = ActionTimeout(
            f"{action.text_label!r} was still {was} when the timeout of "
            f"{cutter.text_label!r} ({cutter._run_timeout}s) ran out"
        )
        action._exc = exc
        action.state = TIMEOUT
        ctx.status(action, TIMEOUT, exc)
        raise
    except (ActionTimeout, GraphTimeout) as exc:
        action._exc = exc
        action.state = TIMEOUT
        ctx.status(action, TIMEOUT, exc)
    except Exception as exc:
        action._exc = exc
        action.state = FAILED
        ctx.status(action, FAILED, exc)
    else:
        action._value = value
        action.state = DONE
        ctx.status(action, DONE)
    finally:
        if slot:  # always given back: the asynciojobs window leak cannot happen
            window.release()


async def _body(action: Action, ctx: RunContext) -> Any:
    if hasattr(action, "actions"):  # a nested graph
        return await action._co_run(ctx, nested=True)
    if action._plan_state is None:
        kind, made = action._invoke()
        if kind == AWAIT:
            return await bounded(made, action)
        if kind != PLAN:
            return made
        action._plan_state = ctx.make_plan_state(action, made)
    state = action._plan_state
    try:
        value = await bounded(ctx.run_plan(action, state), action)
    except asyncio.CancelledError:
        if ctx.interruption() not in ("pause", "suspend"):
            action._drop_plan_state()  # nothing will resume it
        raise
    except BaseException:
        action._drop_plan_state()
        raise
    action._plan_state = None
    return value


def cut_by_deadline(graph: Any) -> Any:
    """The graph, ``graph`` or one enclosing it, whose timeout is cutting its actions short."""
    seen = set()
    while graph is not None and id(graph) not in seen:
        seen.add(id(graph))
        if graph._cutting:
            return graph
        graph = graph._graph
    return None


async def bounded(awaitable: Any, action: Action) -> Any:
    """Await ``awaitable`` for at most ``action.timeout`` seconds (ActionTimeout after)."""
    if action.timeout is None:
        return await awaitable
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=action.timeout)
    except asyncio.CancelledError:
        await settle([task])
        raise
    if not done:
        await settle([task])
        raise ActionTimeout(f"{action.text_label!r} took over {action.timeout}s")
    return task.result()
