"""Make bluesky's suspenders dependable on our engine, without changing their classes.

bluesky's suspenders drop a trip in three situations (bluesky #1944, #1970 and their kin):
the engine's loop is busy for more than 0.1 s when the trip arrives, the engine is not in the
'running' state at that moment (pausing, paused, already suspending), or a second suspender
trips while a first one holds the plan. ``harden`` fixes the first per suspender; the engine
covers the others by asking every installed suspender whether it is tripped whenever it is
about to go on (on resume, and when a suspension ends).

``harden`` also closes a race in ``get_futures``: it reads ``tripped`` outside the lock, so a
release arriving in between left it handing out a fresh event that nobody would ever set.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Callable, Iterable
from typing import Any

from bluesky.suspenders import SuspenderBase

__all__ = ["harden", "tripped_futures"]


def _make_event_now(self: SuspenderBase) -> asyncio.Event | None:
    # asyncio.Event binds to a loop only when first awaited (Python >= 3.10), so it can be made
    # on any thread; bluesky's version waits at most 0.1 s for the loop to make it, or drops
    # the trip.
    if self._ev is None and self.RE is not None:
        self._ev = asyncio.Event()
    return self._ev


def _get_futures_atomically(self: SuspenderBase) -> tuple[list, str]:
    with self._lock:
        if not self._tripped:
            return [], ""
        return [_make_event_now(self).wait], self._get_justification()


def harden(suspender: Any) -> None:
    """Let a bluesky SuspenderBase register a trip even while the engine's loop is busy,
    and hand out only events that its release will set (unless it does so itself:
    ``hardened = True``)."""
    if isinstance(suspender, SuspenderBase) and not getattr(suspender, "hardened", False):
        suspender._SuspenderBase__make_event = types.MethodType(_make_event_now, suspender)
        suspender.get_futures = types.MethodType(_get_futures_atomically, suspender)


def tripped_futures(suspenders: Iterable[Any]) -> list[Callable]:
    """The awaitable factories of every suspender that is tripped now."""
    futures = []
    for suspender in suspenders:
        if suspender.tripped:
            futures.extend(suspender.get_futures()[0])
    return futures
