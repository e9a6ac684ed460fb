"""Run a coroutine synchronously until it first has to wait.

Most commands finish without ever waiting (a ``read`` of a cached signal, a ``null``, a ``save``).
Scheduling them as tasks would cost a trip through the event loop per message, which is where
bluesky spends much of its time. ``start`` steps the coroutine by hand; only a coroutine that
truly suspends is handed to the loop as a task, which then carries on from where it stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

__all__ = ["Suspended", "start"]


class Suspended:
    """A coroutine that started eagerly and now waits on ``awaiting`` (a future, or None)."""

    __slots__ = ("awaiting", "coro")

    def __init__(self, coro: Coroutine, awaiting: Any) -> None:
        self.coro = coro
        self.awaiting = awaiting

    async def finish(self) -> Any:
        """Carry the coroutine on to its end inside the running task; cancellation reaches it."""
        coro, awaiting = self.coro, self.awaiting
        while True:
            try:
                if awaiting is None:  # a bare yield, as asyncio.sleep(0) makes
                    await asyncio.sleep(0)
                else:
                    # We took the yield in the Task's place, so do what a Task does with it.
                    awaiting._asyncio_future_blocking = False
                    await awaiting
            except BaseException as exc:
                try:
                    awaiting = coro.throw(exc)
                except StopIteration as done:
                    return done.value
                continue
            try:
                awaiting = coro.send(None)
            except StopIteration as done:
                return done.value


def start(coro: Coroutine) -> Any:
    """Step ``coro``; return its result if it finished, else a :class:`Suspended` to await."""
    try:
        awaiting = coro.send(None)
    except StopIteration as done:
        return done.value
    return Suspended(coro, awaiting)
