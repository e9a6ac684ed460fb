"""Running one action of a graph: window slot, hardware locks, timeout, body; shutdown hooks."""

from __future__ import annotations

import asyncio
from typing import Any

from .action import AWAIT, PLAN, Action
from .context import RunContext, settle
from .locking import held
from .result import CANCELLED, DONE, FAILED, RUNNING, TIMEOUT, ActionTimeout

__all__ = ["bounded", "run_action", "shutdown"]


async def run_action(graph: Any, action: Action, window: Any, ctx: RunContext) -> None:
    """Run one action in its task: window slot, locks, body; record how it ended.

    Raises only CancelledError (after marking the action CANCELLED)."""
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
        action.state = CANCELLED
        ctx.status(action, CANCELLED)
        raise
    except ActionTimeout as exc:
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


async def shutdown(graph: Any, nested: bool) -> dict[Action, BaseException]:
    """Run the shutdown hooks once, concurrently, within ``graph.shutdown_timeout``."""
    hooks = [a for a in graph.actions if a.shutdown is not None]
    if not nested and graph.shutdown is not None:
        hooks.append(graph)
    errors: dict[Action, BaseException] = {}
    futures: dict[asyncio.Future, Action] = {}
    for action in hooks:
        try:
            made = action.shutdown()
            if asyncio.iscoroutine(made) or isinstance(made, asyncio.Future):
                futures[asyncio.ensure_future(made)] = action
        except Exception as exc:
            errors[action] = exc
    if futures:
        _, pending = await asyncio.wait(futures, timeout=graph.shutdown_timeout)
        await settle(pending)
        for fut, action in futures.items():
            if fut in pending:
                errors[action] = TimeoutError(f"shutdown took over {graph.shutdown_timeout}s")
            elif fut.exception() is not None:
                errors[action] = fut.exception()
    return errors


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
