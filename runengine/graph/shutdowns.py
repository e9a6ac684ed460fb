"""Shutdown hooks of a graph run: each distinct hook once, after the last of its users.

An action's ``shutdown`` (and a graph's own) is a callable, plain or returning an awaitable.
Several actions may name the same one: ``shutdown=ssh.close`` on every action that uses one
connection (the seed notebook's concern: one connection, closed from several places). Equal
callables are one hook (bound methods of one object compare equal), and its *users* are the
actions naming it, in the graph and in its nested graphs. In each run of the top-level graph,
each hook runs exactly once:

- as soon as every one of its users has ended in this run (done, failed, timed out, cancelled
  or skipped);
- otherwise when the top-level run ends, however it ends (normally, a critical failure, its
  timeout, ``end()``, a pause or an abort cancelling it), for users that never started too.

A hook has ``shutdown_timeout`` seconds (of the graph its first user belongs to). What it
raises, or a TimeoutError when it runs over, is recorded in ``shutdown_errors`` under its first
user, both in the top-level graph and in the graph that user belongs to.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .context import settle

if TYPE_CHECKING:
    from .action import Action
    from .graph import ActionGraph

__all__ = ["ShutdownHooks"]


def _key(hook: Callable) -> Any:
    """What makes two hooks one: equality (bound methods), or identity if unhashable."""
    try:
        hash(hook)
    except TypeError:
        return ("unhashable", id(hook))
    return hook


class _Hook:
    __slots__ = ("call", "first", "owner", "started", "task", "timeout", "users")

    def __init__(self, call: Callable, first: Action, owner: ActionGraph) -> None:
        self.call = call
        self.first = first  # errors are recorded under this user
        self.owner = owner  # ...in this graph too
        self.timeout = owner.shutdown_timeout
        self.users: set[Action] = set()
        self.started = False
        self.task: asyncio.Future | None = None


class ShutdownHooks:
    """The shutdown hooks of one run of ``top`` (and of its nested graphs)."""

    def __init__(self, top: ActionGraph) -> None:
        self.top = top
        self._hooks: dict[Any, _Hook] = {}
        self._of: dict[Action, list[_Hook]] = {}  # user -> the hooks it is a user of
        self._ended: set[Action] = set()
        self._collect(top)

    def _collect(self, graph: ActionGraph) -> None:
        graph.shutdown_errors = {}
        if graph is self.top:
            self._register(graph, graph)  # the top graph's own hook: at the very end
        for action in graph.actions:
            self._register(action, graph)
            if hasattr(action, "actions"):
                self._collect(action)  # type: ignore[arg-type]

    def _register(self, action: Action, owner: ActionGraph) -> None:
        call = action.shutdown
        if call is None:
            return
        key = _key(call)
        hook = self._hooks.get(key)
        if hook is None:
            hook = self._hooks[key] = _Hook(call, action, owner)
        hook.users.add(action)
        self._of.setdefault(action, []).append(hook)

    # ---- running ---------------------------------------------------------------------------
    def ended(self, action: Action) -> None:
        """``action`` has ended in this run: start the hooks it was the last user of."""
        hooks = self._of.get(action)
        if not hooks or action in self._ended:
            return
        self._ended.add(action)
        for hook in hooks:
            if not hook.started and hook.users <= self._ended:
                self._start(hook)

    def _start(self, hook: _Hook) -> None:
        hook.started = True
        try:
            made = hook.call()
        except Exception as exc:
            self._record(hook, exc)
            return
        if inspect.isawaitable(made):
            hook.task = asyncio.ensure_future(_bounded(made, hook.timeout))

    def _record(self, hook: _Hook, exc: BaseException) -> None:
        self.top.shutdown_errors[hook.first] = exc
        hook.owner.shutdown_errors[hook.first] = exc

    async def close(self) -> bool:
        """Run the hooks not run yet, wait for all (each within its timeout), record errors.

        Returns True if the caller was cancelled meanwhile (the hooks are then cut short)."""
        for hook in self._hooks.values():
            if not hook.started:
                self._start(hook)
        tasks = {hook.task: hook for hook in self._hooks.values() if hook.task is not None}
        cancelled = False
        pending = set(tasks)
        while pending:
            try:
                _, pending = await asyncio.wait(pending)
            except asyncio.CancelledError:
                cancelled = True
                await settle(pending)  # cancelled again: cut them short
                pending = set()
        for task, hook in tasks.items():
            if task.cancelled():
                self._record(hook, asyncio.CancelledError("shutdown cut short"))
            elif task.exception() is not None:
                self._record(hook, task.exception())  # type: ignore[arg-type]
        return cancelled


async def _bounded(made: Any, timeout: float) -> Any:
    task = asyncio.ensure_future(made)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    except asyncio.CancelledError:
        await settle([task])
        raise
    if not done:
        await settle([task])
        raise TimeoutError(f"shutdown took over {timeout}s")
    return task.result()
